// The console's JSON API (same origin; the token travels in the HttpOnly cookie the landing page set).

export class ApiError extends Error {
  constructor(status, payload) {
    super(payload && payload.error ? payload.error : `HTTP ${status}`);
    this.status = status;
    this.errors = payload && Array.isArray(payload.errors) ? payload.errors : null;
  }
}

const base = (id) => `/api/cameras/${encodeURIComponent(id)}`;

async function call(method, path, body, asBlob = false) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.ok) return asBlob ? response.blob() : response.json();
  let payload = null;
  try { payload = await response.json(); } catch { payload = null; }
  throw new ApiError(response.status, payload);
}

export const api = {
  cameras: () => call("GET", "/api/cameras"),
  camera: (id) => call("GET", base(id)),
  save: (id, camera) => call("PUT", base(id), camera),
  snapshot: (id, fresh) => call("GET", `${base(id)}/snapshot.jpg${fresh ? "?fresh=1" : ""}`, undefined, true),
  preview: (id, camera) => call("POST", `${base(id)}/preview.jpg`, camera, true),
  audit: (id, camera) => call("POST", `${base(id)}/audit`, camera),
};
