// Sentiric Studio: chat with the served model through its OpenAI-compatible API, stream the
// reply, and measure it. Plain browser JavaScript with no dependencies, so the page works in
// an air-gapped cluster (the server's Content-Security-Policy allows nothing from elsewhere).
"use strict";

(() => {
  // The page is served at <prefix>/studio/, so the API is one level up: works behind a proxy
  // that mounts the server under a path prefix too.
  const API = new URL("../v1/", window.location.href);
  const KEY_STORAGE = "sentiric-studio-api-key";
  const EXAMPLE_SCHEMA = {
    type: "object",
    properties: {
      answer: { type: "string", maxLength: 200 },
      confidence: { type: "number", minimum: 0, maximum: 1 },
    },
    required: ["answer", "confidence"],
    additionalProperties: false,
  };

  const $ = (id) => document.getElementById(id);
  const state = {
    model: null, // the card from GET /v1/models
    history: [], // [{role, content}] of finished turns
    ttfts: [],
    rates: [],
    controller: null, // AbortController of the reply streaming now
  };

  // -- small helpers --------------------------------------------------------------------

  function median(values) {
    if (values.length === 0) return null;
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  function fixed(value, digits) {
    return value === null || value === undefined || !Number.isFinite(value)
      ? "–"
      : value.toFixed(digits);
  }

  function headers() {
    const out = { "Content-Type": "application/json" };
    const key = $("api-key").value.trim();
    if (key) out.Authorization = `Bearer ${key}`;
    return out;
  }

  function fillList(element, pairs) {
    element.replaceChildren();
    for (const [name, value] of pairs) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value === null || value === undefined ? "–" : String(value);
      element.append(dt, dd);
    }
  }

  async function errorText(response) {
    // The server answers every refusal as {"error": {"message", "type", "param", "code"}}.
    try {
      const body = await response.json();
      const error = body.error || {};
      const param = error.param ? ` (${error.param})` : "";
      return `${response.status} ${error.message || response.statusText}${param}`;
    } catch {
      return `${response.status} ${response.statusText}`;
    }
  }

  // -- the model card: name, readiness, engine and sampling settings ----------------------

  let modelTimer = null;

  async function loadModel() {
    clearTimeout(modelTimer);
    let card = null;
    try {
      const response = await fetch(new URL("models", API), { headers: headers() });
      if (!response.ok) {
        showModelProblem(await errorText(response));
        return;
      }
      card = (await response.json()).data[0];
    } catch (error) {
      showModelProblem(`server unreachable: ${error.message}`);
      modelTimer = setTimeout(loadModel, 3000);
      return;
    }
    state.model = card;
    $("model-name").textContent = card.id;
    $("model-state").textContent = card.ready ? "ready" : "loading…";
    $("ready-dot").className = `dot ${card.ready ? "ok" : "wait"}`;
    document.body.dataset.ready = card.ready ? "true" : "false";
    const engine = card.engine || {};
    fillList($("engine"), [
      ["model file", engine.file],
      ["sequences (parallel)", engine.parallel],
      ["context per sequence", card.context_length],
      ["batch tokens", engine.batch_size],
      ["KV cache type", engine.kv_cache_type],
      ["flash attention", engine.flash_attention],
      ["GPU layers", engine.gpu_layers],
      ["CPU variant", engine.cpu_variant],
      ["GPU", engine.gpu],
    ]);
    const sampling = card.sampling || {};
    fillList($("sampling-defaults"), [
      ["temperature", sampling.temperature],
      ["top_p", sampling.top_p],
      ["top_k", sampling.top_k],
      ["min_p", sampling.min_p],
      ["repeat_penalty", sampling.repeat_penalty],
      ["max tokens (ceiling)", sampling.max_tokens],
    ]);
    $("temperature").placeholder = fixed(sampling.temperature, 2);
    $("top-p").placeholder = fixed(sampling.top_p, 2);
    $("max-tokens").placeholder = sampling.max_tokens ?? "";
    $("max-tokens").max = sampling.max_tokens ?? "";
    describeDefaultFormat();
    if (!card.ready) modelTimer = setTimeout(loadModel, 2000);
  }

  function showModelProblem(text) {
    $("model-name").textContent = "no model";
    $("model-state").textContent = text;
    $("ready-dot").className = "dot bad";
    document.body.dataset.ready = "false";
  }

  function describeDefaultFormat() {
    const schema = state.model && state.model.response_format;
    $("default-format-note").textContent = schema
      ? "The profile answers in its own JSON schema unless a request sends another format."
      : "The profile has no default format: replies are free text.";
    if (!$("json-schema").value) {
      $("json-schema").value = JSON.stringify(schema || EXAMPLE_SCHEMA, null, 2);
    }
  }

  // -- the request ------------------------------------------------------------------------

  function numberField(id, integer) {
    const raw = $(id).value.trim();
    if (raw === "") return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new Error(`${id} is not a number`);
    return integer ? Math.trunc(value) : value;
  }

  function stopSequences() {
    return $("stop")
      .value.split("\n")
      .filter((line) => line !== "")
      .map((line) => line.replaceAll("\\n", "\n"));
  }

  // The schema the reply should match: the one typed in, or the profile's default.
  function expectedSchema() {
    const mode = $("output-mode").value;
    if (mode === "json_schema") return JSON.parse($("json-schema").value);
    if (mode === "default" && state.model && state.model.response_format) {
      return state.model.response_format;
    }
    return null;
  }

  function buildBody(message) {
    const messages = [];
    const system = $("system-prompt").value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push(...state.history, { role: "user", content: message });
    const body = {
      model: state.model ? state.model.id : "",
      messages,
      stream: true,
      stream_options: { include_usage: true },
    };
    const rag = $("rag-context").value.trim();
    if (rag) body.rag_context = rag;
    const fields = [
      ["temperature", "temperature", false],
      ["top_p", "top-p", false],
      ["max_tokens", "max-tokens", true],
      ["seed", "seed", true],
    ];
    for (const [name, id, integer] of fields) {
      const value = numberField(id, integer);
      if (value !== undefined) body[name] = value;
    }
    const stop = stopSequences();
    if (stop.length) body.stop = stop;
    const mode = $("output-mode").value;
    if (mode === "text") body.response_format = { type: "text" };
    if (mode === "json_schema") {
      let schema;
      try {
        schema = JSON.parse($("json-schema").value);
      } catch (error) {
        throw new Error(`the JSON schema does not parse: ${error.message}`);
      }
      body.response_format = { type: "json_schema", json_schema: { name: "studio", schema } };
    }
    return body;
  }

  // -- the conversation -------------------------------------------------------------------

  function addBubble(role, text) {
    const empty = $("conversation").querySelector(".empty");
    if (empty) empty.remove();
    const bubble = document.createElement("div");
    bubble.className = `bubble ${role}`;
    const label = document.createElement("div");
    label.className = "role";
    label.textContent = role === "user" ? "you" : "assistant";
    const content = document.createElement("div");
    content.className = "content";
    content.textContent = text;
    bubble.append(label, content);
    if (role === "assistant") {
      bubble.dataset.testid = "reply";
      bubble.dataset.state = "waiting";
      bubble.dataset.chunks = "0";
    }
    $("conversation").append(bubble);
    bubble.scrollIntoView({ block: "end" });
    return bubble;
  }

  function setBusy(busy) {
    $("send").disabled = busy;
    $("stop-button").disabled = !busy;
  }

  async function send(event) {
    if (event) event.preventDefault();
    const message = $("message").value.trim();
    if (!message || state.controller) return;
    let body;
    try {
      body = buildBody(message);
    } catch (error) {
      addBubble("assistant", `Not sent: ${error.message}`).classList.add("error");
      return;
    }
    $("last-request").textContent = JSON.stringify(body, null, 2);
    $("message").value = "";
    addBubble("user", message);
    const reply = addBubble("assistant", "");
    const content = reply.querySelector(".content");
    const controller = new AbortController();
    state.controller = controller;
    setBusy(true);
    const started = performance.now();
    let firstAt = null;
    let lastAt = null;
    let text = "";
    let usage = null;
    let finish = null;
    let failure = null;
    try {
      const response = await fetch(new URL("chat/completions", API), {
        method: "POST",
        headers: headers(),
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) {
        failure = await errorText(response);
      } else {
        reply.dataset.state = "streaming";
        for await (const chunk of events(response)) {
          if (chunk.error) {
            failure = chunk.error.message || "the server ended the stream with an error";
            break;
          }
          if (chunk.usage) usage = chunk.usage;
          for (const choice of chunk.choices || []) {
            const delta = (choice.delta && choice.delta.content) || "";
            if (delta) {
              const now = performance.now();
              if (firstAt === null) {
                firstAt = now;
                $("ttft").textContent = fixed(firstAt - started, 0);
              }
              lastAt = now;
              text += delta;
              content.textContent = text;
              reply.dataset.chunks = String(Number(reply.dataset.chunks) + 1);
            }
            if (choice.finish_reason) finish = choice.finish_reason;
          }
        }
      }
    } catch (error) {
      failure = error.name === "AbortError" ? "stopped" : `request failed: ${error.message}`;
    } finally {
      state.controller = null;
      setBusy(false);
    }
    const ended = performance.now();
    if (failure) {
      reply.classList.add("error");
      const note = document.createElement("div");
      note.className = "note";
      note.textContent = failure;
      reply.append(note);
    }
    if (text) {
      state.history.push({ role: "user", content: message }, { role: "assistant", content: text });
    }
    report({ started, firstAt, lastAt, ended, usage, finish });
    if (text) showJson(text, expectedSchema());
    reply.dataset.state = failure ? "failed" : "done";
  }

  // Server-sent events of a streamed completion: each `data:` line holds one JSON chunk,
  // `data: [DONE]` ends the stream.
  async function* events(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let boundary;
      while ((boundary = buffered.indexOf("\n\n")) >= 0) {
        const event = buffered.slice(0, boundary);
        buffered = buffered.slice(boundary + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") return;
          yield JSON.parse(data);
        }
      }
    }
  }

  // TTFT: from sending to the first text. Tokens/s: the decode rate, i.e. the tokens after
  // the first over the time after the first (the prompt's evaluation is in TTFT already).
  function report({ started, firstAt, lastAt, ended, usage, finish }) {
    const ttft = firstAt === null ? null : firstAt - started;
    const completion = usage ? usage.completion_tokens : null;
    let rate = null;
    if (firstAt !== null && completion !== null && completion > 1 && lastAt > firstAt) {
      rate = ((completion - 1) * 1000) / (lastAt - firstAt);
    }
    if (ttft !== null) state.ttfts.push(ttft);
    if (rate !== null) state.rates.push(rate);
    $("ttft").textContent = fixed(ttft, 0);
    $("tps").textContent = fixed(rate, 1);
    $("prompt-tokens").textContent = usage ? usage.prompt_tokens : "–";
    const details = usage && usage.prompt_tokens_details;
    $("cached-tokens").textContent = details ? details.cached_tokens : "–";
    $("completion-tokens").textContent = completion ?? "–";
    $("total-ms").textContent = fixed(ended - started, 0);
    $("finish-reason").textContent = finish || "–";
    $("ttft-median").textContent = fixed(median(state.ttfts), 0);
    $("tps-median").textContent = fixed(median(state.rates), 1);
    const count = state.ttfts.length;
    $("reply-count").textContent = `${count} ${count === 1 ? "reply" : "replies"}`;
  }

  // -- structured output ------------------------------------------------------------------

  function showJson(text, schema) {
    const box = $("json-result");
    if (!schema) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      $("json-status").textContent = "does not parse";
      $("json-status").className = "bad";
      $("json-view").textContent = `${error.message}\n\n${text}`;
      return;
    }
    const problems = validate(value, schema, "$");
    $("json-status").textContent = problems.length
      ? `parses; ${problems.length} schema problem(s)`
      : "valid";
    $("json-status").className = problems.length ? "bad" : "ok";
    $("json-view").textContent =
      JSON.stringify(value, null, 2) + (problems.length ? `\n\n${problems.join("\n")}` : "");
  }

  // A check of the JSON Schema keywords structured output relies on (type, properties,
  // required, additionalProperties, items, enum, const, lengths, counts and ranges). The
  // server's grammar already enforces the schema; this shows it held.
  function validate(value, schema, path) {
    if (typeof schema !== "object" || schema === null) return [];
    const out = [];
    const kind = Array.isArray(value)
      ? "array"
      : value === null
        ? "null"
        : Number.isInteger(value)
          ? "integer"
          : typeof value;
    if (schema.type) {
      const allowed = Array.isArray(schema.type) ? schema.type : [schema.type];
      const ok = allowed.some((t) => t === kind || (t === "number" && kind === "integer"));
      if (!ok) return [`${path}: is ${kind}, expected ${allowed.join(" or ")}`];
    }
    if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
      out.push(`${path}: not one of the enum values`);
    }
    if ("const" in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) {
      out.push(`${path}: is not the const value`);
    }
    if (kind === "string") {
      const length = [...value].length;
      if (schema.minLength !== undefined && length < schema.minLength) out.push(`${path}: shorter than ${schema.minLength}`);
      if (schema.maxLength !== undefined && length > schema.maxLength) out.push(`${path}: longer than ${schema.maxLength}`);
    }
    if (kind === "integer" || kind === "number") {
      if (schema.minimum !== undefined && value < schema.minimum) out.push(`${path}: below ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) out.push(`${path}: above ${schema.maximum}`);
    }
    if (kind === "array") {
      if (schema.minItems !== undefined && value.length < schema.minItems) out.push(`${path}: fewer than ${schema.minItems} items`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) out.push(`${path}: more than ${schema.maxItems} items`);
      if (schema.items) value.forEach((item, i) => out.push(...validate(item, schema.items, `${path}[${i}]`)));
    }
    if (kind === "object") {
      const properties = schema.properties || {};
      for (const name of schema.required || []) {
        if (!(name in value)) out.push(`${path}: missing required "${name}"`);
      }
      for (const [name, item] of Object.entries(value)) {
        if (name in properties) out.push(...validate(item, properties[name], `${path}.${name}`));
        else if (schema.additionalProperties === false) out.push(`${path}: unexpected "${name}"`);
      }
    }
    return out;
  }

  // -- wiring -----------------------------------------------------------------------------

  function clear() {
    if (state.controller) state.controller.abort();
    state.history = [];
    $("conversation").replaceChildren();
    $("json-result").hidden = true;
  }

  function init() {
    const key = $("api-key");
    key.value = sessionStorage.getItem(KEY_STORAGE) || "";
    key.addEventListener("change", () => {
      // sessionStorage: the key lives as long as this tab, never on disk across sessions.
      if (key.value.trim()) sessionStorage.setItem(KEY_STORAGE, key.value.trim());
      else sessionStorage.removeItem(KEY_STORAGE);
      loadModel();
    });
    $("composer").addEventListener("submit", send);
    $("message").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) send(event);
    });
    $("stop-button").addEventListener("click", () => state.controller && state.controller.abort());
    $("clear").addEventListener("click", clear);
    $("output-mode").addEventListener("change", () => {
      $("json-schema").hidden = $("output-mode").value !== "json_schema";
    });
    loadModel();
  }

  init();
})();
