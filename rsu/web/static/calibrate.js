// The calibration helper: click image points, enter ground coordinates, see the homography's error,
// draw lanes / stop bars / counting lines / crosswalks over the frame, save into the site config.
"use strict";

(() => {
  const { el, fmt, fetchJSON, applyHomography } = RSU;
  const $ = (id) => document.getElementById(id);
  const HINTS = {
    point: "Click a known point on the road; then type its ground x / y.",
    lane: "Pick a lane, click its centre line from upstream to the stop bar, then Finish.",
    stopbar: "Pick an approach, click both ends of its stop bar: its lanes are cut (or extended) to it.",
    line: "Give the line an id, click its two ends.",
    crosswalk: "Give the crosswalk an id, click its corners, then Finish.",
  };
  const s = {
    info: null, camera: null, points: [], fit: null, zoom: 1, tool: "point", drawing: [],
    lanes: new Map(), crosswalks: new Map(), lines: new Map(), // pending edits by id
    fitTimer: null,
  };

  // ---------------------------------------------------------------- geometry in ground metres
  function laneCenterline(id) {
    if (s.lanes.has(id)) return s.lanes.get(id).centerline_m;
    const lane = s.info.layout.lanes.find((l) => l.id === id);
    return lane ? lane.centerline_m : null;
  }
  function currentGeometry() {
    const lanes = s.info.layout.lanes.map((l) => ({ id: l.id, approach: l.approach, width_m: l.width_m, centerline_m: laneCenterline(l.id) }));
    for (const [id, edit] of s.lanes) if (!lanes.some((l) => l.id === id)) lanes.push({ id, approach: edit.approach, width_m: edit.width_m || 3.5, centerline_m: edit.centerline_m });
    const crosswalks = s.info.layout.crosswalks.filter((c) => !s.crosswalks.has(c.id)).map((c) => ({ id: c.id, polygon_m: c.polygon_m }));
    for (const [id, edit] of s.crosswalks) crosswalks.push({ id, polygon_m: edit.polygon_m, pending: true });
    const lines = s.info.layout.counting_lines.filter((l) => !s.lines.has(l.id)).map((l) => ({ id: l.id, line_m: l.line_m }));
    for (const [id, edit] of s.lines) lines.push({ id, line_m: edit.line_m, pending: true });
    return { lanes, crosswalks, lines };
  }
  function imageToGround(px) {
    if (!s.fit) return null;
    const m = s.fit.image_to_ground;
    const w = (p) => m[2][0] * p[0] + m[2][1] * p[1] + m[2][2];
    const reference = s.points.find((p) => p.ground_m);
    if (reference && Math.sign(w(px)) !== Math.sign(w(reference.image_px))) return null; // above the horizon
    return applyHomography(m, px).map((v) => Math.round(v * 1000) / 1000);
  }
  function stopBarCut(centerline, a, b) {
    // Where the lane's last segment, extended, meets the line through the stop bar's ends a and b.
    const p = centerline[centerline.length - 2], q = centerline[centerline.length - 1];
    const d = [q[0] - p[0], q[1] - p[1]], e = [b[0] - a[0], b[1] - a[1]];
    const denominator = d[0] * e[1] - d[1] * e[0];
    if (Math.abs(denominator) < 1e-9) return null;
    const t = ((a[0] - p[0]) * e[1] - (a[1] - p[1]) * e[0]) / denominator;
    if (t <= 0.05) return null;
    return [...centerline.slice(0, -1), [p[0] + d[0] * t, p[1] + d[1] * t].map((v) => Math.round(v * 1000) / 1000)];
  }

  // ---------------------------------------------------------------- drawing
  function draw() {
    const canvas = $("overlay"), img = $("frame");
    if (!img.naturalWidth) return;
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    canvas.style.width = `${img.naturalWidth * s.zoom}px`; canvas.style.height = `${img.naturalHeight * s.zoom}px`;
    img.style.width = canvas.style.width;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const lineScale = Math.max(1, img.naturalWidth / 1000);
    ctx.font = `${Math.round(13 * lineScale)}px system-ui, sans-serif`;
    if (s.fit) {
      const grounds = s.points.filter((p) => p.ground_m).map((p) => p.ground_m);
      const projector = new RSU.Projector(s.fit.ground_to_image, grounds);
      const stroke = (pieces, colour, width, dash = []) => {
        ctx.strokeStyle = colour; ctx.lineWidth = width * lineScale; ctx.setLineDash(dash);
        for (const piece of pieces) { ctx.beginPath(); piece.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y))); ctx.stroke(); }
        ctx.setLineDash([]);
      };
      const geometry = currentGeometry();
      for (const lane of geometry.lanes) {
        const pending = s.lanes.has(lane.id);
        stroke(projector.polyline(lane.centerline_m), pending ? "#ffeb3b" : "#b0bec5", 1.5, [6, 4]);
        const n = lane.centerline_m.length, [px, py] = lane.centerline_m[n - 2], [qx, qy] = lane.centerline_m[n - 1];
        const len = Math.hypot(qx - px, qy - py) || 1, ux = (qx - px) / len, uy = (qy - py) / len, half = (lane.width_m || 3.5) / 2;
        const bar = [[qx - uy * half, qy + ux * half], [qx + uy * half, qy - ux * half]];
        stroke(projector.polyline(bar), pending ? "#ffeb3b" : "#ffffff", 3);
        const label = projector.point([qx, qy]);
        if (label) { ctx.fillStyle = "#fff"; ctx.fillText(lane.id, label[0] + 4, label[1] - 4); }
      }
      for (const cw of geometry.crosswalks) stroke(projector.polyline(cw.polygon_m, true), cw.pending ? "#ffeb3b" : "#00e6ff", 1.5);
      for (const line of geometry.lines) {
        stroke(projector.polyline(line.line_m), line.pending ? "#ffeb3b" : "#00e5ff", 2);
        const end = projector.point(line.line_m[1]);
        if (end) { ctx.fillStyle = "#00e5ff"; ctx.fillText(line.id, end[0] + 4, end[1]); }
      }
    }
    // calibration points, and where the fitted homography puts their ground positions
    s.points.forEach((p, i) => {
      const [x, y] = p.image_px;
      ctx.strokeStyle = "#ff4081"; ctx.lineWidth = 2 * lineScale;
      ctx.beginPath(); ctx.arc(x, y, 6 * lineScale, 0, 2 * Math.PI); ctx.stroke();
      ctx.fillStyle = "#ff4081"; ctx.fillText(String(i + 1), x + 8 * lineScale, y - 8 * lineScale);
      if (s.fit && p.ground_m) {
        const [gx, gy] = applyHomography(s.fit.ground_to_image, p.ground_m);
        ctx.strokeStyle = "#69f0ae";
        ctx.beginPath(); ctx.moveTo(gx - 5, gy); ctx.lineTo(gx + 5, gy); ctx.moveTo(gx, gy - 5); ctx.lineTo(gx, gy + 5); ctx.stroke();
      }
    });
    // the shape being drawn
    if (s.drawing.length) {
      ctx.strokeStyle = "#ffeb3b"; ctx.fillStyle = "#ffeb3b"; ctx.lineWidth = 2 * lineScale;
      ctx.beginPath(); s.drawing.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y))); ctx.stroke();
      for (const [x, y] of s.drawing) { ctx.beginPath(); ctx.arc(x, y, 3 * lineScale, 0, 2 * Math.PI); ctx.fill(); }
    }
  }

  // ---------------------------------------------------------------- calibration points and fit
  function renderPoints() {
    const body = $("points").querySelector("tbody");
    body.replaceChildren(...s.points.map((p, i) => {
      const gx = el("input", { type: "number", step: "0.001", class: "gx", value: p.ground_m ? p.ground_m[0] : "" });
      const gy = el("input", { type: "number", step: "0.001", class: "gy", value: p.ground_m ? p.ground_m[1] : "" });
      const onChange = () => {
        const x = parseFloat(gx.value), y = parseFloat(gy.value);
        p.ground_m = Number.isFinite(x) && Number.isFinite(y) ? [x, y] : null;
        scheduleFit();
      };
      gx.addEventListener("input", onChange); gy.addEventListener("input", onChange);
      const remove = el("button", { class: "secondary", text: "✕", title: "remove this point" });
      remove.addEventListener("click", () => { s.points.splice(i, 1); renderPoints(); scheduleFit(); });
      const error = s.fit && s.fit.point_errors_m && p.ground_m ? s.fit.point_errors_m[s.points.filter((q) => q.ground_m).indexOf(p)] : null;
      return el("tr", {}, el("td", { text: i + 1 }), el("td", { text: `${fmt(p.image_px[0], 0)}, ${fmt(p.image_px[1], 0)}` }),
        el("td", {}, gx), el("td", {}, gy), el("td", { class: "num", text: fmt(error, 2) }), el("td", {}, remove));
    }));
  }
  function scheduleFit() {
    clearTimeout(s.fitTimer);
    s.fitTimer = setTimeout(runFit, 250);
  }
  async function runFit() {
    const complete = s.points.filter((p) => p.ground_m);
    $("fit-error").dataset.points = "0";
    if (complete.length < 4) {
      s.fit = null;
      $("fit-error").textContent = `${complete.length} of at least 4 points have ground coordinates`;
      $("fit-message").textContent = "";
      updateSave(); draw();
      return;
    }
    try {
      s.fit = await fetchJSON("/api/calibration/fit", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ points: complete.map((p) => ({ image_px: p.image_px, ground_m: p.ground_m })) }),
      });
      const rms = s.fit.reprojection_error_m;
      $("fit-error").dataset.points = String(complete.length); // which fit is shown (tests wait on it)
      $("fit-error").textContent = `RMS error ${fmt(rms, 3)} m`;
      $("fit-error").className = rms < 0.3 ? "ok-text" : rms < 1 ? "warn-text" : "bad-text";
      $("fit-message").textContent = s.fit.mirrored ? "The fit mirrors the image: are ground x (east) and y (north) swapped?" : "";
    } catch (error) {
      s.fit = null;
      $("fit-error").textContent = "no fit";
      $("fit-error").className = "bad-text";
      $("fit-message").textContent = error.message;
    }
    renderPoints(); updateSave(); draw();
  }

  // ---------------------------------------------------------------- tools
  function toolOptions() {
    const box = $("tool-options");
    const layout = s.info.layout;
    $("tool-hint").textContent = HINTS[s.tool];
    s.drawing = [];
    const finish = (label, handler) => { const b = el("button", { text: label }); b.addEventListener("click", handler); return b; };
    if (s.tool === "lane") {
      const select = el("select", { id: "lane-id" }, ...layout.lanes.map((l) => el("option", { value: l.id, text: l.id })), el("option", { value: "", text: "new lane…" }));
      const fields = el("div", { id: "new-lane", hidden: "" },
        el("div", { class: "row" }, "id ", el("input", { type: "text", id: "new-lane-id" }), " approach ",
          el("select", { id: "new-lane-approach" }, ...s.info.approaches.map((a) => el("option", { value: a, text: a })))),
        el("div", { class: "row" }, "signal group ", el("select", { id: "new-lane-group" }, ...layout.signal_groups.filter((g) => g.kind === "vehicle").map((g) => el("option", { value: g.id, text: g.id }))),
          " movements ", el("input", { type: "text", id: "new-lane-movements", value: "through" }), " width m ", el("input", { type: "number", id: "new-lane-width", value: "3.5", step: "0.1" })));
      select.addEventListener("change", () => { fields.hidden = select.value !== ""; });
      box.replaceChildren(el("div", { class: "row" }, "lane ", select), fields, el("div", { class: "row" }, finish("Finish lane", finishLane), finish("Clear clicks", () => { s.drawing = []; draw(); })));
    } else if (s.tool === "stopbar") {
      box.replaceChildren(el("div", { class: "row" }, "approach ", el("select", { id: "stopbar-approach" }, ...s.info.approaches.map((a) => el("option", { value: a, text: a })))));
    } else if (s.tool === "line") {
      box.replaceChildren(el("div", { class: "row" }, "id ", el("input", { type: "text", id: "line-id", list: "line-ids" }),
        el("datalist", { id: "line-ids" }, ...layout.counting_lines.map((l) => el("option", { value: l.id }))),
        " approach ", el("select", { id: "line-approach" }, el("option", { value: "", text: "–" }), ...s.info.approaches.map((a) => el("option", { value: a, text: a })))));
    } else if (s.tool === "crosswalk") {
      box.replaceChildren(el("div", { class: "row" }, "id ", el("input", { type: "text", id: "crosswalk-id", list: "crosswalk-ids" }),
        el("datalist", { id: "crosswalk-ids" }, ...layout.crosswalks.map((c) => el("option", { value: c.id }))),
        " signal group ", el("select", { id: "crosswalk-group" }, el("option", { value: "", text: "–" }), ...layout.signal_groups.filter((g) => g.kind === "pedestrian").map((g) => el("option", { value: g.id, text: g.id })))),
        el("div", { class: "row" }, finish("Finish crosswalk", finishCrosswalk), finish("Clear clicks", () => { s.drawing = []; draw(); })));
    } else {
      box.replaceChildren();
    }
    draw();
  }
  function groundOfDrawing() {
    const ground = s.drawing.map(imageToGround);
    if (ground.some((g) => g === null)) { say("A clicked point lies at or above the horizon: click on the road surface."); return null; }
    return ground;
  }
  function say(text) { $("save-result").textContent = text; }
  function finishLane() {
    const ground = groundOfDrawing();
    if (!ground || ground.length < 2) { say("Click at least two points of the lane's centre line, upstream first."); return; }
    const id = $("lane-id").value;
    if (id) { s.lanes.set(id, { ...(s.lanes.get(id) || {}), id, centerline_m: ground }); }
    else {
      const newId = $("new-lane-id").value.trim();
      if (!newId) { say("Give the new lane an id."); return; }
      s.lanes.set(newId, { id: newId, centerline_m: ground, approach: $("new-lane-approach").value, signal_group: $("new-lane-group").value,
        movements: $("new-lane-movements").value.split(",").map((m) => m.trim()).filter(Boolean), width_m: parseFloat($("new-lane-width").value) || 3.5 });
    }
    s.drawing = []; renderEdits(); draw();
  }
  function finishCrosswalk() {
    const ground = groundOfDrawing();
    const id = $("crosswalk-id").value.trim();
    if (!ground || ground.length < 3 || !id) { say("Give the crosswalk an id and click at least three corners."); return; }
    const group = $("crosswalk-group").value;
    s.crosswalks.set(id, { id, polygon_m: ground, ...(group ? { signal_group: group } : {}) });
    s.drawing = []; renderEdits(); draw();
  }
  function onClick(event) {
    const rect = $("overlay").getBoundingClientRect();
    const px = [Math.round(((event.clientX - rect.left) / s.zoom) * 10) / 10, Math.round(((event.clientY - rect.top) / s.zoom) * 10) / 10];
    if (s.tool === "point") {
      s.points.push({ image_px: px, ground_m: null });
      renderPoints(); draw();
      const inputs = $("points").querySelectorAll("input.gx");
      inputs[inputs.length - 1].focus();
      return;
    }
    if (!s.fit) { say("Fit the calibration first (at least 4 points with ground coordinates)."); return; }
    s.drawing.push(px);
    if (s.tool === "stopbar" && s.drawing.length === 2) {
      const ground = groundOfDrawing();
      s.drawing = [];
      if (!ground) return draw();
      const approach = $("stopbar-approach").value;
      const lanes = currentGeometry().lanes.filter((l) => l.approach === approach);
      let changed = 0;
      for (const lane of lanes) {
        const cut = stopBarCut(lane.centerline_m, ground[0], ground[1]);
        if (cut) { s.lanes.set(lane.id, { ...(s.lanes.get(lane.id) || {}), id: lane.id, centerline_m: cut }); changed += 1; }
      }
      say(changed ? `stop bar set for ${changed} lane(s) of ${approach}` : `the stop bar does not cross the lanes of ${approach}`);
      renderEdits();
    } else if (s.tool === "line" && s.drawing.length === 2) {
      const ground = groundOfDrawing();
      s.drawing = [];
      const id = $("line-id").value.trim();
      if (ground && id) {
        const approach = $("line-approach").value;
        s.lines.set(id, { id, line_m: ground, ...(approach ? { approach } : {}) });
        renderEdits();
      } else if (!id) say("Give the counting line an id first.");
    }
    draw();
  }

  // ---------------------------------------------------------------- edits and saving
  function renderEdits() {
    const items = [
      el("li", { text: `camera ${s.camera.id}: ${s.points.filter((p) => p.ground_m).length} calibration points` }),
      ...[...s.lanes.keys()].map((id) => el("li", { text: `lane ${id}: new centre line / stop bar` })),
      ...[...s.lines.keys()].map((id) => el("li", { text: `counting line ${id}` })),
      ...[...s.crosswalks.keys()].map((id) => el("li", { text: `crosswalk ${id}` })),
    ];
    $("edits").replaceChildren(...items);
    updateSave();
  }
  function updateSave() { $("save").disabled = !s.fit; }
  async function save() {
    const body = {
      camera_id: s.camera.id,
      points: s.points.filter((p) => p.ground_m).map((p) => ({ image_px: p.image_px, ground_m: p.ground_m })),
      geometry: { lanes: [...s.lanes.values()], crosswalks: [...s.crosswalks.values()], counting_lines: [...s.lines.values()] },
    };
    try {
      const result = await fetchJSON("/api/calibration/save", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      say(`Saved to ${result.saved} (RMS ${fmt(result.reprojection_error_m, 3)} m); previous file kept as ${result.backup}. ${result.note}.`);
      $("save-result").className = "message ok-text";
      await load(s.camera.id, false);
    } catch (error) {
      say(`Not saved: ${error.message}`);
      $("save-result").className = "message bad-text";
    }
  }

  // ---------------------------------------------------------------- loading
  function applyZoom() {
    const img = $("frame");
    const choice = $("zoom").value;
    s.zoom = choice === "fit" ? Math.min(2, ($("frame-wrap").clientWidth - 2) / (img.naturalWidth || 1)) : parseFloat(choice);
    draw();
  }
  async function loadFrame(refresh) {
    const img = $("frame");
    $("frame-info").textContent = "reading a frame from the camera…";
    const response = await fetch(`/api/calibration/frame.jpg?camera=${encodeURIComponent(s.camera.id)}${refresh ? "&refresh=true" : ""}`);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      $("frame-info").textContent = body.detail || `no frame (HTTP ${response.status})`;
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    img.onload = () => {
      $("frame-info").textContent = `${img.naturalWidth} × ${img.naturalHeight} px · ${s.camera.uri || ""}`;
      document.body.dataset.frameLoaded = "true";
      applyZoom();
    };
    img.src = url;
  }
  async function load(cameraId, reloadFrame = true) {
    s.info = await fetchJSON("/api/calibration");
    $("site-file").textContent = s.info.site_file;
    const videoCameras = s.info.cameras.filter((c) => c.source === "video");
    $("camera-select").replaceChildren(...videoCameras.map((c) => el("option", { value: c.id, text: c.id })));
    if (!videoCameras.length) { $("frame-info").textContent = "This site has no video camera: nothing to calibrate."; return; }
    s.camera = videoCameras.find((c) => c.id === cameraId) || videoCameras[0];
    $("camera-select").value = s.camera.id;
    s.points = s.camera.points.map((p) => ({ image_px: p.image_px, ground_m: p.ground_m }));
    s.lanes.clear(); s.lines.clear(); s.crosswalks.clear();
    renderPoints(); renderEdits(); toolOptions();
    await runFit();
    if (reloadFrame) await loadFrame(false);
  }

  $("overlay").addEventListener("click", onClick);
  $("tools").addEventListener("change", (event) => { s.tool = event.target.value; toolOptions(); });
  $("zoom").addEventListener("change", applyZoom);
  $("reload-frame").addEventListener("click", () => loadFrame(true));
  $("camera-select").addEventListener("change", (event) => load(event.target.value));
  $("save").addEventListener("click", save);
  $("discard").addEventListener("click", () => load(s.camera.id, false));
  window.addEventListener("resize", () => { if ($("zoom").value === "fit") applyZoom(); });
  load().catch((error) => { $("frame-info").textContent = `error: ${error.message}`; });
})();
