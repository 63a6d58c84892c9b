// The live page: one WebSocket brings JSON snapshots (text) and camera preview JPEGs (binary).
"use strict";

(() => {
  const { el, fmt } = RSU;
  const $ = (id) => document.getElementById(id);
  let map = null;
  let snapshots = 0;
  let lastFrameUrl = null;

  const KIND_NAMES = {
    rear_end: "rear-end", crossing: "crossing paths", vulnerable_road_user: "vulnerable road user",
    red_light_violation: "red-light violation", stopped_in_junction: "stopped in junction",
  };

  function setPill(node, text, level) {
    node.textContent = text;
    node.className = `pill ${level}`;
  }

  function clockText(seconds) {
    if (!seconds) return "";
    return new Date(seconds * 1000).toISOString().substring(11, 21) + " UTC";
  }

  function stale(node, view) {
    node.textContent = view && view.stale ? `stale ${fmt(view.age_s, 1, " s")}` : "";
  }

  function renderSignals(signals) {
    const body = $("signals").querySelector("tbody");
    stale($("signals-stale"), signals);
    if (!signals) return;
    $("signals").dataset.seq = signals.seq;
    $("controller-mode").textContent = `${signals.mode} · ${signals.strategy}`;
    $("controller-reason").textContent = signals.reason || "";
    body.replaceChildren(...signals.groups.map((g) => el("tr", { "data-group": g.id, "data-indication": g.indication },
      el("td", { text: g.id + (g.kind === "pedestrian" ? " (ped)" : "") }),
      el("td", {}, el("span", { class: `lamp ${g.indication}` })),
      el("td", { text: g.indication.replace("_", " ") }),
      el("td", { class: "num countdown", text: fmt(g.likely_s, 1, " s") }),
      el("td", { class: "num dim", text: `${fmt(Math.max(0, g.min_end_s), 0)}–${fmt(Math.max(0, g.max_end_s), 0)}` }),
      el("td", { class: "dim", text: g.spat_state || "–" }))));
  }

  function renderLanes(lanes, lines) {
    stale($("lanes-stale"), lanes);
    const body = $("lanes").querySelector("tbody");
    if (lanes) {
      body.replaceChildren(...lanes.lanes.map((l) => el("tr", {},
        el("td", { text: l.id }), el("td", { text: l.signal_group || "" }),
        el("td", { class: "num", text: l.queued }), el("td", { class: "num", text: fmt(l.queue_m, 0) }),
        el("td", { class: "num", text: fmt(l.max_wait_s, 0) }),
        el("td", { class: l.occupied ? "warn-text" : "dim", text: l.occupied ? "occupied" : "free" }),
        el("td", { class: "num", text: l.count }))));
      if (!lanes.valid) $("lanes-stale").textContent = "detectors invalid (camera down?)";
    }
    $("lines").querySelector("tbody").replaceChildren(...lines.map((line) => el("tr", {},
      el("td", { text: line.id }), el("td", { class: "num", text: line.total }),
      el("td", { class: "dim", text: Object.entries(line.by_class).map(([k, v]) => `${k} ${v}`).join(", ") }))));
  }

  function renderWarnings(warnings, clock) {
    $("warnings-active").textContent = `${warnings.active.length} active`;
    $("warnings").replaceChildren(...warnings.feed.map((w) => {
      const who = w.participants.map((p) => `#${p.id} ${p.type} ${fmt(p.speed * 3.6, 0)} km/h`).join(" × ");
      const ago = clock ? `${fmt(Math.max(0, clock - w.time_s), 0)} s ago` : "";
      return el("li", { class: `${w.severity} ${w.status}`, "data-warning": w.warning_id },
        el("span", { class: "when", text: ago }),
        el("span", { class: "what", text: `${KIND_NAMES[w.kind] || w.kind} · ${w.severity}` }),
        el("span", { class: "dim", text: ` ${w.status}${w.ttc_s !== null ? ` · TTC ${fmt(w.ttc_s, 1)} s` : ""}` }),
        el("div", { class: "dim", text: who }));
    }));
  }

  function yesNo(node, ok, okText, badText) {
    node.textContent = ok ? okText : badText;
    node.className = ok ? "ok-text" : "bad-text";
  }

  function renderHealth(state) {
    const m = state.metrics || {};
    const latency = Object.entries(m.latency_ms || {}).map(([stage, ms]) => `${stage} ${fmt(ms, 0)} ms`).join(" · ");
    $("h-fps").textContent = m.fps !== null && m.fps !== undefined ? `${fmt(m.fps, 1)} fps` : "–";
    $("h-latency").textContent = (latency || "–") + (m.track_age_ms !== null && m.track_age_ms !== undefined ? ` · tracks ${fmt(m.track_age_ms, 0)} ms old on arrival` : "");
    $("h-drops").textContent = `${m.sequence_gaps || 0} missing messages · ${m.mqtt_dropped || 0} inbox drops · ${m.invalid_messages || 0} invalid`;
    const link = state.link;
    yesNo($("h-broker"), link.mqtt_connected, `connected (backlog ${link.mqtt_backlog})`, "disconnected");
    const health = state.health;
    if (health) {
      yesNo($("h-redis"), health.redis_connected, "reachable", "unreachable: aggregates held in memory");
      const uplink = health.stages.find((s) => s.name === "uplink");
      const backlog = link.outbox_backlog === null ? `outbox unreadable` : `outbox ${link.outbox_backlog} record(s)`;
      const up = uplink ? uplink.alive : false;
      $("h-uplink").textContent = `${uplink ? (up ? "running" : "down") : "–"} · ${backlog}`;
      $("h-uplink").className = up && link.outbox_backlog !== null && link.outbox_backlog < 5 ? "ok-text" : "warn-text";
      $("stages").querySelector("tbody").replaceChildren(...health.stages.map((s) => el("tr", {},
        el("td", { text: s.name }), el("td", { class: s.alive ? "ok-text" : "bad-text", text: s.alive ? "yes" : "no" }),
        el("td", { class: "num", text: s.restarts }),
        el("td", { class: "num", text: s.heartbeat_age_s === null ? "–" : fmt(s.heartbeat_age_s, 1, " s") }))));
      $("problems").replaceChildren(...health.problems.map((p) => el("li", { text: p })));
      setPill($("unit-status"), health.status, health.status === "online" ? "ok" : health.status === "degraded" ? "warn" : "bad");
    } else if (state.status) {
      setPill($("unit-status"), state.status, state.status === "online" ? "ok" : "bad");
    }
  }

  function render(state) {
    snapshots += 1;
    document.body.dataset.snapshots = snapshots;
    $("clock").textContent = clockText(state.clock_s) + (state.simulated ? " (simulated)" : state.realtime ? "" : " (recorded)");
    const tracks = state.tracks;
    $("track-count").textContent = `${tracks ? tracks.objects.length : 0} tracks`;
    if (tracks) $("map").dataset.seq = tracks.seq;
    stale($("tracks-stale"), tracks);
    renderSignals(state.signals);
    renderLanes(state.lanes, state.lines);
    renderWarnings(state.warnings, state.clock_s);
    renderHealth(state);
    if (state.camera) {
      $("camera-meta").textContent = `preview ${state.camera.frames} frames · ${fmt(state.camera.age_s, 1)} s old`;
      $("camera-stale").textContent = state.camera.stale ? "stale" : "";
    }
    if (state.world) {
      const w = state.world;
      $("world-meta").textContent = `simulation ${fmt(w.sim_time_s, 0)} s · departed ${w.vehicles_departed} · arrived ${w.vehicles_arrived} · mean delay ${fmt(w.mean_delay_s, 1, " s")} · collisions ${w.collisions}`;
    }
    if (map) map.update(state);
  }

  function showFrame(blob) {
    const img = $("camera");
    const url = URL.createObjectURL(blob);
    img.onload = () => {
      if (lastFrameUrl) URL.revokeObjectURL(lastFrameUrl);
      lastFrameUrl = url;
      img.dataset.frames = Number(img.dataset.frames) + 1;
      $("camera-empty").hidden = true;
    };
    img.src = url;
  }

  function connect(delay = 500) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    socket.binaryType = "blob";
    socket.onopen = () => { setPill($("link-status"), "live", "ok"); delay = 500; };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") render(JSON.parse(event.data));
      else showFrame(event.data);
    };
    socket.onclose = () => {
      setPill($("link-status"), "reconnecting…", "bad");
      setTimeout(() => connect(Math.min(delay * 2, 5000)), delay);
    };
  }

  async function start() {
    const layout = await RSU.fetchJSON("/api/site");
    $("site-name").textContent = layout.name;
    $("unit-id").textContent = layout.unit_id;
    document.title = `${layout.name} · rsu-edge`;
    $("camera-panel").hidden = !layout.cameras.some((c) => c.source === "video");
    map = new RSU.BirdsEye($("map"), layout);
    map.draw();
    connect();
  }

  start().catch((error) => { setPill($("link-status"), `error: ${error.message}`, "bad"); });
})();
