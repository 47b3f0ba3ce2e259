// The coordinator's JSON API (dashboard/proto/dashboard/api/dashboard.proto, through
// protobuf's JSON mapping: field names as in the .proto, int64 as strings, enums by name,
// default values left out).

export type Json = Record<string, any>;

/** A number from a JSON field: int64 arrive as strings, NaN as "NaN", defaults are absent. */
export function num(value: unknown, fallback = 0): number {
  if (value === undefined || value === null || value === "") return fallback;
  return Number(value);
}

export function nums(values: unknown): number[] {
  return Array.isArray(values) ? values.map((v) => Number(v)) : [];
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

type Params = Record<string, string | number | boolean | undefined | null>;

function url(path: string, params?: Params): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return `/api/v1/${path}${text ? `?${text}` : ""}`;
}

async function parse(response: Response): Promise<Json> {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.message ?? response.statusText);
  return body;
}

/** A response index.html's script asked for before the app ran, taken once. */
function early(target: string): Promise<Response> | undefined {
  const started = (window as any).__hippoEarly as Record<string, Promise<Response>> | undefined;
  const response = started?.[target];
  if (response) delete started![target];
  return response;
}

export async function get(path: string, params?: Params): Promise<Json> {
  const target = url(path, params);
  return parse(await (early(target) ?? fetch(target, { credentials: "same-origin" })));
}

export async function post(path: string, params?: Params): Promise<Json> {
  return parse(
    await fetch(url(path, params), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-Hippo-Dashboard": "1" },
    }),
  );
}

export const studyPath = (id: string, what = "") =>
  `studies/${encodeURIComponent(id)}${what ? `/${what}` : ""}`;
