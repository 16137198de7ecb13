// filetype@1: a fap engine in Node.js, written from docs/engine-protocol.md alone, no dependencies.
// It names a file's type by its first bytes ("magic numbers") and reports its size and SHA-256.
//
//   fap work --engine-command "node examples/node/engine.mjs"
//   fap upload --engine filetype@1 photo.png
import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import http from "node:http";

const ENGINE = "filetype@1";
const PROTOCOL = 1;
const HEAD = 4096; // the bytes kept to tell the type: magic numbers, and enough to tell text

// [type, MIME type, the bytes a file of that type starts with]
const MAGIC = [
  ["png", "image/png", [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  ["jpeg", "image/jpeg", [0xff, 0xd8, 0xff]],
  ["gif", "image/gif", [...Buffer.from("GIF8")]],
  ["pdf", "application/pdf", [...Buffer.from("%PDF-")]],
  ["zip", "application/zip", [0x50, 0x4b, 0x03, 0x04]],
  ["gzip", "application/gzip", [0x1f, 0x8b]],
  ["zstd", "application/zstd", [0x28, 0xb5, 0x2f, 0xfd]],
  ["elf", "application/x-elf", [0x7f, 0x45, 0x4c, 0x46]],
  ["sqlite", "application/vnd.sqlite3", [...Buffer.from("SQLite format 3\0")]],
];

function fileType(head, whole) {
  for (const [type, mime, magic] of MAGIC) {
    if (head.length >= magic.length && magic.every((byte, i) => head[i] === byte)) {
      return { type, mime };
    }
  }
  try {
    // Text: UTF-8 without NUL bytes. Unless the head is the whole file, a character may be cut
    // off at its end, which `stream: true` allows.
    new TextDecoder("utf-8", { fatal: true }).decode(head, { stream: !whole });
    if (!head.includes(0)) return { type: "text", mime: "text/plain" };
  } catch {}
  return { type: "binary", mime: "application/octet-stream" };
}

function answer(res, status, body, headers = {}) {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": data.length,
    ...headers,
  });
  res.end(data);
}

// A failure answered before the body has ended: close, so the worker stops sending it.
function refuse(res, status, error) {
  answer(res, status, { error }, { Connection: "close" });
}

function fileMeta(headers) {
  const value = (name) => {
    const text = (headers[name.toLowerCase()] ?? "").trim();
    if (!text) throw new Error(`The ${name} header is missing.`);
    return text;
  };
  const uploadId = value("Fap-Upload-Id");
  let name;
  try {
    name = decodeURIComponent(value("Fap-File-Name"));
  } catch (error) {
    if (!(error instanceof URIError)) throw error;
    throw new Error("The Fap-File-Name header is not percent-encoded UTF-8.");
  }
  const size = value("Fap-File-Size");
  if (!/^[0-9]+$/.test(size)) throw new Error("The Fap-File-Size header is not a whole number of bytes.");
  const sha256 = value("Fap-File-Sha256");
  if (!/^[0-9a-fA-F]{64}$/.test(sha256)) throw new Error("The Fap-File-Sha256 header is not 64 hexadecimal digits.");
  return { uploadId, name, size: Number(size), sha256: sha256.toLowerCase() };
}

function analyze(req, res) {
  let file;
  try {
    file = fileMeta(req.headers);
  } catch (error) {
    return refuse(res, 400, error.message);
  }
  const digest = createHash("sha256");
  const head = [];
  let kept = 0;
  let received = 0;
  let refused = false;
  req.on("data", (piece) => {
    if (refused) return;
    received += piece.length;
    if (received > file.size) {
      refused = true;
      return refuse(res, 400, `The body is longer than the ${file.size} bytes Fap-File-Size announced.`);
    }
    digest.update(piece);
    if (kept < HEAD) {
      head.push(piece.subarray(0, HEAD - kept));
      kept += head.at(-1).length;
    }
  });
  req.on("end", () => {
    if (refused) return;
    if (received !== file.size) {
      return refuse(res, 400, `The body holds ${received} bytes where Fap-File-Size announced ${file.size}.`);
    }
    const type = fileType(Buffer.concat(head), received <= HEAD);
    answer(res, 200, { ...type, bytes: received, sha256: digest.digest("hex") });
  });
  // The worker closed the connection before the body ended: abandon the analysis, answer nothing.
  req.on("error", () => {});
}

// No request timeout: the body may pause for as long as the uploader takes (the protocol's rule).
const server = http.createServer({ requestTimeout: 0 }, (req, res) => {
  res.on("error", () => {}); // the worker is gone: nobody to answer
  const path = req.url.split("?")[0];
  if (path === "/v1/info") {
    if (req.method !== "GET") return answer(res, 405, { error: "/v1/info answers GET only." }, { Allow: "GET" });
    return answer(res, 200, { engine: ENGINE, protocol: PROTOCOL });
  }
  if (path === "/v1/analyze") {
    if (req.method !== "POST") return answer(res, 405, { error: "/v1/analyze answers POST only." }, { Allow: "POST" });
    return analyze(req, res);
  }
  answer(res, 404, { error: `There is no ${path}; this engine answers GET /v1/info and POST /v1/analyze.` });
});

const socketPath = process.env.FAP_ENGINE_SOCKET;
if (!socketPath) {
  console.error("error: FAP_ENGINE_SOCKET is not set; the worker names the socket to listen on there.");
  process.exit(3);
}
server.on("error", (error) => {
  console.error(`error: cannot listen on ${socketPath}: ${error.message}.`);
  process.exit(3);
});
server.listen(socketPath, () => console.error(`Engine ${ENGINE} (protocol ${PROTOCOL}) listening on ${socketPath}.`));

// First SIGTERM or SIGINT: accept no more, finish the analysis in flight, remove the socket, exit 0.
// A second SIGINT stops at once.
let stopping = false;
function stop(signal) {
  if (stopping) {
    if (signal === "SIGINT") process.exit(130);
    return;
  }
  stopping = true;
  server.close(() => {
    rmSync(socketPath, { force: true });
    console.error(`Engine ${ENGINE} stopped.`);
    process.exit(0);
  });
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
