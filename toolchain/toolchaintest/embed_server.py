"""An OpenAI-compatible embeddings server backed by a real model, for tests.

It stands in for vLLM's serving of an embedding model (vLLM needs a GPU):
the same routes and bodies agora's client uses, GET /v1/models and
POST /v1/embeddings ({"model", "input": [str] | str, "encoding_format":
"float"} → {"object": "list", "data": [{"object": "embedding", "index",
"embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}), the
vectors from sentence-transformers' encode on the model directory, the
tokens counted by the model's tokenizer. A bearer key is required when
AGORA_EMBED_KEY is set. The port it listens on is written to PORT_FILE once
it serves.

usage: python embed_server.py MODEL_DIR MODEL_NAME PORT_FILE
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sentence_transformers import SentenceTransformer


def main(model_dir, name, port_file):
    model = SentenceTransformer(model_dir, device="cpu")
    key = os.environ.get("AGORA_EMBED_KEY", "")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("embed_server: " + fmt % args + "\n")

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def authorised(self):
            if key and self.headers.get("Authorization", "") != "Bearer " + key:
                self.reply(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
                return False
            return True

        def do_GET(self):
            if not self.authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self.reply(200, {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "test"}]})
            else:
                self.reply(404, {"error": {"message": "no route " + self.path}})

        def do_POST(self):
            if not self.authorised():
                return
            if self.path.rstrip("/") != "/v1/embeddings":
                self.reply(404, {"error": {"message": "no route " + self.path}})
                return
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if req.get("model") != name:
                self.reply(404, {"error": {"message": f"model {req.get('model')!r} is not served"}})
                return
            if req.get("encoding_format", "float") != "float":
                self.reply(400, {"error": {"message": "only encoding_format float is served"}})
                return
            texts = req["input"]
            if isinstance(texts, str):
                texts = [texts]
            vecs = model.encode(texts, convert_to_numpy=True)
            tokens = sum(len(model.tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"]) for t in texts)
            self.reply(200, {
                "object": "list", "model": name,
                "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vecs)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            })

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, port_file)
    srv.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
