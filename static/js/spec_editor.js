// The spec editor: a textarea holding the graph JSON, kept in localStorage, with exact
// line/column for syntax errors and a way to show where a spec path (nodes.x.args.n) is.

const STORAGE_KEY = "pipelines.spec.v1";
const SAVE_DELAY_MS = 300;

/** An error at a character offset of the text. */
export class JsonSyntaxError extends Error {
  /** @param {string} message @param {number} position @param {string} text */
  constructor(message, position, text) {
    super(message);
    this.position = position;
    const before = text.slice(0, position);
    this.line = before.split("\n").length;
    this.column = position - before.lastIndexOf("\n");
  }
}

/**
 * Check JSON text strictly and say where the first problem is; JSON.parse does the parsing,
 * this only locates errors (V8's messages do not always carry a position) and rejects
 * duplicate keys, which JSON.parse would silently collapse.
 * @param {string} text
 * @returns {JsonSyntaxError | null}
 */
export function findJsonError(text) {
  let i = 0;
  const fail = (message, at = i) => {
    throw new JsonSyntaxError(message, Math.min(at, text.length), text);
  };
  const describe = (at) => (at >= text.length ? "the end of the text" : `'${text[at]}'`);
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const string = () => {
    const start = i;
    i++; // opening quote
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i++;
        return JSON.parse(text.slice(start, i));
      }
      if (c === "\\") {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("bad \\u escape in a string");
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail(`bad escape '\\${e ?? ""}' in a string`);
      } else if (c < " ") {
        fail(c === "\n" ? "unterminated string (a string cannot span lines)" : "control character in a string");
      } else i++;
    }
    return fail("unterminated string", start);
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail(`expected a value, found ${describe(i)}`);
    if (!Number.isFinite(Number(m[0]))) fail(`number ${m[0]} is out of range`);
    i += m[0].length;
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === "{") return object();
    if (c === "[") return array();
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    for (const word of ["true", "false", "null"]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    if (/^(NaN|-?Infinity)/.test(text.slice(i))) fail("NaN and Infinity are not JSON");
    if (c === "'") fail("use double quotes for strings");
    return fail(`expected a value, found ${describe(i)}`);
  };
  const object = () => {
    i++;
    const seen = new Set();
    ws();
    if (text[i] === "}") {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') {
        if (text[i] === "}") fail("trailing comma before '}'");
        if (text[i] === "'") fail("use double quotes for keys");
        fail(`expected a double-quoted key, found ${describe(i)}`);
      }
      const keyAt = i;
      const key = string();
      if (seen.has(key)) fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
      seen.add(key);
      ws();
      if (text[i] !== ":") fail(`expected ':' after key ${JSON.stringify(key)}, found ${describe(i)}`);
      i++;
      value();
      ws();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "}") {
        i++;
        return;
      }
      fail(`expected ',' or '}', found ${describe(i)}`);
    }
  };
  const array = () => {
    i++;
    ws();
    if (text[i] === "]") {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (text[i] === "]") fail("trailing comma before ']'");
      value();
      ws();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "]") {
        i++;
        return;
      }
      fail(`expected ',' or ']', found ${describe(i)}`);
    }
  };
  try {
    ws();
    if (i >= text.length) fail("the spec is empty");
    value();
    ws();
    if (i < text.length) fail(`unexpected ${describe(i)} after the end of the JSON value`);
    return null;
  } catch (err) {
    if (err instanceof JsonSyntaxError) return err;
    throw err;
  }
}

/**
 * Parse spec text: {ok: true, spec} or {ok: false, error: JsonSyntaxError}.
 * @param {string} text
 */
export function parseSpec(text) {
  const located = findJsonError(text);
  if (located) return { ok: false, error: located };
  try {
    return { ok: true, spec: JSON.parse(text) };
  } catch (err) {
    // Not expected after findJsonError; keep V8's word for it.
    return { ok: false, error: new JsonSyntaxError(String(err?.message ?? err), 0, text) };
  }
}

/** Pretty JSON as the editor shows it: two-space indent, short arrays on one line. */
export function formatSpec(spec) {
  return JSON.stringify(spec, null, 2).replace(/\[\n\s+([^[\]{}]*?)\n\s*\]/g, (whole, inner) => {
    const items = inner.split(/,\n\s*/);
    const line = `[${items.join(", ")}]`;
    return line.length <= 72 ? line : whole;
  });
}

export class SpecEditor {
  /**
   * @param {HTMLTextAreaElement} textarea
   * @param {{onChange: (text: string) => void}} hooks
   */
  constructor(textarea, hooks) {
    this.textarea = textarea;
    this.hooks = hooks;
    this.saveTimer = 0;
    // Tab is left alone (it moves focus), so the editor is never a keyboard trap.
    textarea.addEventListener("input", () => this.changed());
    // A reload or a closed tab right after a change still keeps it.
    window.addEventListener("pagehide", () => this.save());
  }

  /** The saved spec text, if any. */
  restore() {
    try {
      const text = localStorage.getItem(STORAGE_KEY);
      if (text && text.trim()) {
        this.textarea.value = text;
        return true;
      }
    } catch {
      // Storage can be disabled; the editor still works without it.
    }
    return false;
  }

  get text() {
    return this.textarea.value;
  }

  /** Replace the text (an example, an import, a palette stub) and keep it. */
  setText(text) {
    this.textarea.value = text;
    this.changed();
  }

  parse() {
    return parseSpec(this.text);
  }

  changed() {
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.save(), SAVE_DELAY_MS);
    this.hooks.onChange(this.text);
  }

  save() {
    clearTimeout(this.saveTimer);
    try {
      localStorage.setItem(STORAGE_KEY, this.text);
    } catch {
      // Quota or disabled storage: nothing to do but go on.
    }
  }

  /** Select a character range and scroll it into view. */
  select(start, end) {
    const ta = this.textarea;
    ta.focus();
    ta.setSelectionRange(start, end);
    const line = ta.value.slice(0, start).split("\n").length;
    const lineHeight = parseFloat(getComputedStyle(ta).lineHeight) || 18;
    ta.scrollTop = Math.max(0, (line - 4) * lineHeight);
  }

  /** Put the cursor at a syntax error. */
  revealError(error) {
    this.select(error.position, Math.min(error.position + 1, this.text.length));
  }

  /**
   * Find a spec path ("nodes.coro2.args.n", "graph.inp[0]", "graph.inp.0") in the text: each
   * key is searched as a quoted string after the previous one. Returns false if not found.
   */
  revealPath(path) {
    if (!path) return false;
    const parts = String(path)
      .replace(/\[(\d+)\]/g, ".$1")
      .split(".")
      .filter((part) => part !== "" && !/^\d+$/.test(part));
    let from = 0;
    let found = null;
    for (const part of parts) {
      const at = this.text.indexOf(JSON.stringify(part), from);
      if (at < 0) break;
      found = [at, at + JSON.stringify(part).length];
      from = found[1];
    }
    if (!found) return false;
    this.select(found[0], found[1]);
    return true;
  }

  exportFile() {
    const blob = new Blob([this.text.endsWith("\n") ? this.text : `${this.text}\n`], {
      type: "application/json",
    });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = "pipeline.json";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  /** @param {File} file */
  async importFile(file) {
    if (file.size > 1_000_000) throw new Error(`${file.name} is over 1 MB: the server would refuse it`);
    const text = await file.text();
    const parsed = parseSpec(text);
    // A file that parses is re-indented; one that does not is kept as is so its error shows.
    this.setText(parsed.ok ? formatSpec(parsed.spec) : text);
    return parsed;
  }
}
