// Sharing a graph: a link that opens the page with it (in the URL fragment, which never reaches
// the server), and files in JSON or YAML (export and import).
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

/** Largest file the page imports: the server would refuse a bigger spec anyway. */
const MAX_FILE_BYTES = 1_000_000;

/**
 * The header's Import, Export JSON, Export YAML and Share link buttons.
 * @param {Record<string, any>} els
 * @param {{spec: () => object, exportJson: () => void, importJson: (file: File) => Promise<void>,
 *          replace: (spec: object, message: string) => void, note: (text: string) => void}} hooks
 */
export function wireFileControls(els, hooks) {
  els.export.addEventListener("click", () => hooks.exportJson());
  els.exportYaml.addEventListener("click", () => download(toYaml(hooks.spec()), "pipeline.yaml", "application/yaml"));
  els.share.addEventListener("click", async () => {
    els.shareBox.hidden = false;
    els.shareNote.textContent = "";
    try {
      els.shareUrl.value = shareLink(hooks.spec());
    } catch (err) {
      els.shareUrl.value = "";
      els.shareNote.textContent = `No link: ${err.message}.`;
      return;
    }
    els.shareUrl.select();
    try {
      await navigator.clipboard.writeText(els.shareUrl.value);
      els.shareNote.textContent = "Copied to the clipboard.";
    } catch {
      els.shareNote.textContent = "Copy it from the box.";
    }
  });
  els.import.addEventListener("click", () => els.importFile.click());
  els.importFile.addEventListener("change", async () => {
    const file = els.importFile.files?.[0];
    els.importFile.value = "";
    if (!file) return;
    try {
      if (file.size > MAX_FILE_BYTES) throw new Error("it is over 1 MB: the server would refuse it");
      if (/\.ya?ml$/i.test(file.name)) hooks.replace(fromYaml(await file.text()), `Imported ${file.name}.`);
      else await hooks.importJson(file);
    } catch (err) {
      hooks.note(`Cannot import ${file.name}: ${err.message}`);
    }
  });
}
