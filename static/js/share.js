// Sharing a graph: a link that opens the page with it (in the URL fragment, which never reaches
// the server), and files in JSON or YAML.
import yaml from "js-yaml";

/** The longest link the page makes (browsers and chat tools cut longer ones). */
export const MAX_LINK_CHARS = 8000;
const PREFIX = "graph=";

function toBase64Url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}

/** A link to this page that opens with `spec`; throws when it would be too long. */
export function shareLink(spec) {
  const url = `${window.location.origin}${window.location.pathname}#${PREFIX}${toBase64Url(JSON.stringify(spec))}`;
  if (url.length > MAX_LINK_CHARS) {
    throw new Error(`the link would be ${url.length} characters (at most ${MAX_LINK_CHARS}); export a file instead`);
  }
  return url;
}

/**
 * The graph in this page's address, if any: {spec} or {error}; the fragment is then removed
 * from the address (other parts of it, such as a token, are left for their readers).
 */
export function takeLinkedSpec() {
  const hash = window.location.hash.replace(/^#/, "");
  const parts = hash.split("&");
  const part = parts.find((p) => p.startsWith(PREFIX));
  if (!part) return null;
  const rest = parts.filter((p) => p !== part).join("&");
  history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? `#${rest}` : ""));
  if (part.length > MAX_LINK_CHARS) return { error: "the graph in the link is too long" };
  try {
    const spec = JSON.parse(fromBase64Url(part.slice(PREFIX.length)));
    if (!spec || typeof spec !== "object" || Array.isArray(spec)) return { error: "the graph in the link is not an object" };
    return { spec };
  } catch (err) {
    return { error: `the graph in the link cannot be read (${err.message})` };
  }
}

export function toYaml(spec) {
  return yaml.dump(spec, { noRefs: true, lineWidth: 100 });
}

/** Parse a YAML file's text (JSON is YAML too) into a spec object. */
export function fromYaml(text) {
  const spec = yaml.load(text, { schema: yaml.JSON_SCHEMA });
  if (!spec || typeof spec !== "object" || Array.isArray(spec)) throw new Error("the file does not hold a graph object");
  return spec;
}

/** Offer text as a file download. */
export function download(text, filename, type) {
  const blob = new Blob([text.endsWith("\n") ? text : `${text}\n`], { type });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
