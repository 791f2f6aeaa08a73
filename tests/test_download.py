"""Archive downloads against a real HTTP server on loopback serving tiny archives."""

import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from vlsae.embed.download import fetch, unpack
from vlsae.embed.readers import read_dataset
from vlsae.embed.toy import TOY_COCO_OPTIONS, write_toy_coco


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, honouring ``Range: bytes=N-`` as COCO's servers do (206 Partial Content)."""

    requests: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        type(self).requests.append((self.path, start))
        if start and start >= len(data):       # a range past the end: 416, as real servers answer
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **kw: RangeHandler(*a, directory=str(root), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.requests = []
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _coco_zip(tmp_path) -> bytes:
    write_toy_coco(tmp_path / "src", n_images=6, captions_per_image=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for path in sorted((tmp_path / "src").rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(tmp_path / "src"))
    return buffer.getvalue()


def test_fetch_checks_md5_and_unpacks_a_readable_dataset(server, tmp_path):
    root, url = server
    data = _coco_zip(tmp_path)
    (root / "coco.zip").write_bytes(data)
    dest = fetch(f"{url}/coco.zip", tmp_path / "dl" / "coco.zip", hashlib.md5(data).hexdigest(), progress=False)
    assert dest.read_bytes() == data and not (tmp_path / "dl" / "coco.zip.part").exists()
    unpack(dest, tmp_path / "coco", tmp_path / "dl" / "coco.unpacked.json")
    assert json.loads((tmp_path / "dl" / "coco.unpacked.json").read_text())["md5"] == hashlib.md5(data).hexdigest()
    source = read_dataset("coco", tmp_path / "coco", **TOY_COCO_OPTIONS)
    assert len(source) == 12


def test_wrong_md5_leaves_nothing_behind(server, tmp_path):
    root, url = server
    (root / "a.zip").write_bytes(b"x" * 1000)
    with pytest.raises(ValueError, match="does not match"):
        fetch(f"{url}/a.zip", tmp_path / "a.zip", "0" * 32, progress=False)
    assert not list(tmp_path.glob("a.zip*"))


def test_partial_download_resumes_with_a_range_request(server, tmp_path):
    root, url = server
    data = os.urandom(3 * (1 << 20) + 17)
    (root / "big.zip").write_bytes(data)
    (tmp_path / "big.zip.part").write_bytes(data[:1_000_000])  # what a killed run leaves
    fetch(f"{url}/big.zip", tmp_path / "big.zip", hashlib.md5(data).hexdigest(), progress=False)
    assert (tmp_path / "big.zip").read_bytes() == data
    assert RangeHandler.requests == [("/big.zip", 1_000_000)]


def test_a_whole_part_file_is_verified_and_published_not_refetched(server, tmp_path):
    """A run killed while it checked the MD5 leaves the whole file as .part: the server answers its range
    request with 416, and the next run checks and publishes it instead of failing forever."""
    root, url = server
    data = os.urandom(300_000)
    (root / "done.zip").write_bytes(data)
    (tmp_path / "done.zip.part").write_bytes(data)
    fetch(f"{url}/done.zip", tmp_path / "done.zip", hashlib.md5(data).hexdigest(), progress=False)
    assert (tmp_path / "done.zip").read_bytes() == data and not (tmp_path / "done.zip.part").exists()
    assert RangeHandler.requests == [("/done.zip", 300_000)]
    # a whole .part with the wrong bytes fails its check and is removed, so the next attempt starts over
    (tmp_path / "bad.zip.part").write_bytes(os.urandom(300_000))
    (root / "bad.zip").write_bytes(data)
    with pytest.raises(ValueError, match="MD5"):
        fetch(f"{url}/bad.zip", tmp_path / "bad.zip", hashlib.md5(data).hexdigest(), progress=False)
    assert not (tmp_path / "bad.zip.part").exists()


def test_workflow_downloads_unpacks_and_embeds_a_listed_dataset(server, tmp_path, repo):
    root, url = server
    data = _coco_zip(tmp_path)
    (root / "coco.zip").write_bytes(data)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "results": str(tmp_path / "results"),
        "downloads": {"tiny-coco": {"url": f"{url}/coco.zip", "md5": hashlib.md5(data).hexdigest(),
                                    "into": str(tmp_path / "coco")}},
        "datasets": {"served": {"format": "coco", "root": str(tmp_path / "coco"), "download": ["tiny-coco"],
                                "options": TOY_COCO_OPTIONS}},
        "models": {"toy-clip": {"toy": "clip"}},
        "embeddings": {"models": ["toy-clip"], "datasets": ["served"], "workers": 0},
        "real_saes": {"enabled": False},
    }))
    store = tmp_path / "results/embeddings/toy-clip/served/manifest.json"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config),
                          "--directory", str(tmp_path), "--snakefile", str(repo / "Snakefile"), str(store)],
                         cwd=repo, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert json.loads(store.read_text())["n_pairs"] == 12
    assert (tmp_path / "resources/downloads/tiny-coco.zip").exists()
