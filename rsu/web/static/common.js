// Shared by the live page and the calibration helper: colours, formatting, the bird's-eye map and
// ground-to-image projection. Plain browser JavaScript, no build step.
"use strict";

const RSU = (() => {
  const SIGNAL_COLOURS = {
    red: "#e53935", red_yellow: "#ff9800", green: "#43a047", yellow: "#fdd835",
    ped_clearance: "#fb8c00", flashing_yellow: "#fdd835", flashing_red: "#e53935", dark: "#555",
  };
  // Same colours as the server-side camera overlay (rsu/web/annotate.py, there in BGR).
  const ROAD_USER_COLOURS = {
    car: "#3caaff", truck: "#285ac8", bus: "#a03cb4", motorcycle: "#ffc83c", bicycle: "#78dc3c", pedestrian: "#ff5050",
  };

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function fmt(value, digits = 1, unit = "") {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return `${Number(value).toFixed(digits)}${unit}`;
  }

  async function fetchJSON(url, options) {
    const response = await fetch(url, options);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body));
    return body;
  }

  // ---- ground -> image through a 3x3 homography, cut where the ground goes behind the camera ----
  class Projector {
    constructor(groundToImage, referenceGroundPoints) {
      this.m = groundToImage;
      const depths = referenceGroundPoints.map((p) => this.depth(p));
      const sorted = depths.slice().sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)] || 1;
      this.sign = median >= 0 ? 1 : -1;
      this.minDepth = 0.05 * Math.abs(median);
    }
    depth([x, y]) { const m = this.m; return m[2][0] * x + m[2][1] * y + m[2][2]; }
    point([x, y]) {
      const m = this.m;
      const w = m[2][0] * x + m[2][1] * y + m[2][2];
      if (this.sign * w < this.minDepth) return null;
      return [(m[0][0] * x + m[0][1] * y + m[0][2]) / w, (m[1][0] * x + m[1][1] * y + m[1][2]) / w];
    }
    // Visible pieces of a ground polyline, each a list of pixels (same rules as rsu/web/geometry.py).
    polyline(points, closed = false) {
      const pts = closed ? [...points, points[0]] : points;
      const pieces = [];
      let current = [];
      const flush = () => {
        if (current.length > 1) pieces.push(current.map((p) => applyHomography(this.m, p)));
        current = [];
      };
      for (let i = 0; i + 1 < pts.length; i++) {
        const clipped = this.clip(pts[i], pts[i + 1]);
        if (!clipped) { flush(); continue; }
        const [start, end] = clipped;
        if (!current.length || current[current.length - 1] !== start) { flush(); current = [start]; }
        current.push(end);
        if (end !== pts[i + 1]) flush(); // cut at the horizon: the next segment starts a new piece
      }
      flush();
      return pieces;
    }
    clip(a, b) {
      const da = this.sign * this.depth(a), db = this.sign * this.depth(b), low = this.minDepth;
      if (da < low && db < low) return null;
      if (da >= low && db >= low) return [a, b];
      const t = (low - da) / (db - da);
      const cut = [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];
      return da < low ? [cut, b] : [a, cut];
    }
  }

  function applyHomography(m, [x, y]) {
    const w = m[2][0] * x + m[2][1] * y + m[2][2];
    return [(m[0][0] * x + m[0][1] * y + m[0][2]) / w, (m[1][0] * x + m[1][1] * y + m[1][2]) / w];
  }

  // ---- the bird's-eye map: site geometry, signal colours, zones, tracks with trails, warnings ----
  class BirdsEye {
    constructor(canvas, layout) {
      this.canvas = canvas;
      this.layout = layout;
      this.trails = new Map(); // track id -> {points: [[x, y]], seen: ms}
      this.state = null;
      this.resetView();
      this.attachControls();
      new ResizeObserver(() => this.draw()).observe(canvas);
    }
    resetView() {
      const [x0, y0, x1, y1] = this.layout.view_bounds_m;
      this.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, span: Math.max(x1 - x0, y1 - y0) };
    }
    attachControls() {
      const c = this.canvas;
      c.addEventListener("wheel", (event) => {
        event.preventDefault();
        const factor = event.deltaY > 0 ? 1.15 : 1 / 1.15;
        const before = this.toGround(event.offsetX, event.offsetY);
        this.view.span = Math.min(2000, Math.max(8, this.view.span * factor));
        const after = this.toGround(event.offsetX, event.offsetY);
        this.view.cx += before[0] - after[0];
        this.view.cy += before[1] - after[1];
        this.draw();
      }, { passive: false });
      let drag = null;
      c.addEventListener("pointerdown", (e) => { drag = [e.offsetX, e.offsetY]; c.setPointerCapture(e.pointerId); });
      c.addEventListener("pointermove", (e) => {
        if (!drag) return;
        const scale = this.scale();
        this.view.cx -= (e.offsetX - drag[0]) / scale;
        this.view.cy += (e.offsetY - drag[1]) / scale;
        drag = [e.offsetX, e.offsetY];
        this.draw();
      });
      c.addEventListener("pointerup", () => { drag = null; });
      c.addEventListener("dblclick", () => { this.resetView(); this.draw(); });
    }
    scale() { return Math.min(this.canvas.clientWidth, this.canvas.clientHeight) / this.view.span; }
    toCanvas([x, y]) {
      const s = this.scale();
      return [this.canvas.clientWidth / 2 + (x - this.view.cx) * s, this.canvas.clientHeight / 2 - (y - this.view.cy) * s];
    }
    toGround(px, py) {
      const s = this.scale();
      return [this.view.cx + (px - this.canvas.clientWidth / 2) / s, this.view.cy - (py - this.canvas.clientHeight / 2) / s];
    }
    path(ctx, points, closed) {
      ctx.beginPath();
      points.forEach((p, i) => { const [x, y] = this.toCanvas(p); if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y); });
      if (closed) ctx.closePath();
    }
    update(state) {
      this.state = state;
      const now = performance.now();
      const objects = (state.tracks && state.tracks.objects) || [];
      for (const o of objects) {
        let trail = this.trails.get(o.id);
        if (!trail) { trail = { points: [] }; this.trails.set(o.id, trail); }
        const last = trail.points[trail.points.length - 1];
        if (!last || last[0] !== o.x || last[1] !== o.y) trail.points.push([o.x, o.y]);
        if (trail.points.length > 60) trail.points.shift();
        trail.seen = now;
      }
      for (const [id, trail] of this.trails) if (now - trail.seen > 2000) this.trails.delete(id);
      this.draw();
    }
    signalOf(groupId) {
      const groups = (this.state && this.state.signals && this.state.signals.groups) || [];
      const group = groups.find((g) => g.id === groupId);
      return group ? group.indication : null;
    }
    draw() {
      const c = this.canvas, ratio = window.devicePixelRatio || 1;
      const w = c.clientWidth, h = c.clientHeight;
      if (!w || !h) return;
      if (c.width !== Math.round(w * ratio) || c.height !== Math.round(h * ratio)) {
        c.width = Math.round(w * ratio); c.height = Math.round(h * ratio);
      }
      const ctx = c.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.fillStyle = "#0f1216"; ctx.fillRect(0, 0, w, h);
      const scale = this.scale();
      const lanesState = new Map(((this.state && this.state.lanes && this.state.lanes.lanes) || []).map((l) => [l.id, l]));
      // lanes
      for (const lane of this.layout.lanes) {
        this.path(ctx, lane.outline_m, true);
        ctx.fillStyle = "#2a3038"; ctx.fill();
        ctx.strokeStyle = "#47505c"; ctx.lineWidth = 1; ctx.stroke();
      }
      for (const lane of this.layout.lanes) {
        const observed = lanesState.get(lane.id);
        this.path(ctx, lane.zone_m, true);
        ctx.fillStyle = observed && observed.occupied ? "rgba(255,165,0,0.55)" : "rgba(160,160,160,0.10)";
        ctx.fill();
        ctx.setLineDash([4, 4]); this.path(ctx, lane.centerline_m, false);
        ctx.strokeStyle = "#5b6673"; ctx.lineWidth = 1; ctx.stroke(); ctx.setLineDash([]);
        const indication = this.signalOf(lane.signal_group);
        this.path(ctx, lane.stop_bar_m, false);
        ctx.strokeStyle = indication ? SIGNAL_COLOURS[indication] : "#ddd";
        ctx.lineWidth = Math.max(3, 0.6 * scale); ctx.stroke();
        if (observed && observed.queue_m > 0) {
          // The queue, drawn back from the stop bar along the lane.
          const tail = tailOf(lane.centerline_m, observed.queue_m);
          this.path(ctx, tail, false);
          ctx.strokeStyle = "rgba(255,120,0,0.8)"; ctx.lineWidth = Math.max(2, lane.width_m * scale * 0.35); ctx.stroke();
        }
      }
      // crosswalks, coloured by their pedestrian signal
      for (const cw of this.layout.crosswalks) {
        const indication = cw.signal_group ? this.signalOf(cw.signal_group) : null;
        this.path(ctx, cw.polygon_m, true);
        ctx.fillStyle = indication === "green" ? "rgba(67,160,71,0.35)" : indication === "ped_clearance" ? "rgba(251,140,0,0.35)" : "rgba(255,255,255,0.12)";
        ctx.fill();
        ctx.strokeStyle = "#cfd8dc"; ctx.lineWidth = 1; ctx.setLineDash([3, 3]); ctx.stroke(); ctx.setLineDash([]);
      }
      // counting lines
      ctx.font = "11px system-ui, sans-serif";
      for (const line of this.layout.counting_lines) {
        this.path(ctx, line.line_m, false);
        ctx.strokeStyle = "#00e5ff"; ctx.lineWidth = 2; ctx.setLineDash([6, 3]); ctx.stroke(); ctx.setLineDash([]);
        const [x, y] = this.toCanvas(line.line_m[1]);
        ctx.fillStyle = "#00e5ff"; ctx.fillText(line.id, x + 4, y);
      }
      // cameras
      for (const cam of this.layout.cameras) {
        const [x, y] = this.toCanvas(cam.position_m);
        ctx.fillStyle = "#b0bec5"; ctx.fillRect(x - 5, y - 5, 10, 10);
        ctx.fillText(cam.id, x + 7, y + 4);
      }
      if (!this.state) return;
      // trails
      for (const [id, trail] of this.trails) {
        if (trail.points.length < 2) continue;
        this.path(ctx, trail.points, false);
        ctx.strokeStyle = trackColour(id); ctx.globalAlpha = 0.6; ctx.lineWidth = 1.5; ctx.stroke(); ctx.globalAlpha = 1;
      }
      // tracks
      const objects = (this.state.tracks && this.state.tracks.objects) || [];
      for (const o of objects) {
        const [x, y] = this.toCanvas([o.x, o.y]);
        ctx.save();
        ctx.translate(x, y);
        ctx.rotate((o.heading * Math.PI) / 180);
        ctx.fillStyle = ROAD_USER_COLOURS[o.type] || "#fff";
        if (o.type === "pedestrian") {
          ctx.beginPath(); ctx.arc(0, 0, Math.max(3, 0.4 * scale), 0, 2 * Math.PI); ctx.fill();
        } else {
          const L = Math.max(6, o.length * scale), W = Math.max(4, o.width * scale);
          ctx.fillRect(-W / 2, -L / 2, W, L);
          ctx.fillStyle = "#fff"; ctx.fillRect(-W / 2, -L / 2, W, Math.max(1.5, L * 0.12)); // the front
        }
        ctx.restore();
        ctx.fillStyle = "#e6e9ee"; ctx.fillText(`#${o.id}`, x + 6, y - 6);
      }
      // active warnings: the conflict point and who is in it
      const active = (this.state.warnings && this.state.warnings.active) || [];
      const byId = new Map(objects.map((o) => [o.id, o]));
      for (const warning of active) {
        const [x, y] = this.toCanvas([warning.x, warning.y]);
        ctx.strokeStyle = warning.severity === "critical" ? "#ff1744" : "#ff9100";
        ctx.lineWidth = 2;
        ctx.beginPath(); ctx.arc(x, y, Math.max(8, 1.5 * scale), 0, 2 * Math.PI); ctx.stroke();
        for (const p of warning.participants) {
          const o = byId.get(p.id);
          if (!o) continue;
          const [px, py] = this.toCanvas([o.x, o.y]);
          ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(px, py); ctx.stroke();
        }
      }
    }
  }

  function tailOf(centerline, length) {
    const tail = [centerline[centerline.length - 1]];
    let remaining = length;
    for (let i = centerline.length - 1; i > 0; i--) {
      const [bx, by] = centerline[i], [ax, ay] = centerline[i - 1];
      const segment = Math.hypot(bx - ax, by - ay);
      if (segment >= remaining) { const t = remaining / segment; tail.push([bx + (ax - bx) * t, by + (ay - by) * t]); break; }
      tail.push([ax, ay]); remaining -= segment;
    }
    return tail;
  }

  function trackColour(id) {
    const hue = Math.round(((id * 0.618033988749895) % 1) * 360);
    return `hsl(${hue}, 85%, 60%)`;
  }

  return { SIGNAL_COLOURS, ROAD_USER_COLOURS, el, fmt, fetchJSON, Projector, applyHomography, BirdsEye, trackColour };
})();
