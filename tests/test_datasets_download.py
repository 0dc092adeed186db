"""`earmark datasets`: downloading (resumed, verified, mirrored), unpacking safely, the
registry and the CLI, against a local HTTP server on 127.0.0.1 that the tests start."""

from __future__ import annotations

import hashlib
import importlib
import io
import sys
import tarfile
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from earmark.errors import ConfigError, DataError

#: The recipe modules the registry imports (written alongside; stubbed while absent).
RECIPE_MODULES = ("speech_commands", "fsdd", "esc50")

#: Seconds any network wait in these tests may take.
TIMEOUT = 10.0


# --------------------------------------------------------------------------
# the server


class Server:
    """Files served by path; counts requests; can drop a response halfway once or
    ignore ``Range``."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drop_once = False
        self.ignore_range = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler_class())
        self.httpd.timeout = TIMEOUT
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = TIMEOUT

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.serve(self)

        return Handler

    def serve(self, handler) -> None:
        wanted = handler.headers.get("Range")
        self.requests.append((handler.path, wanted))
        body = self.files.get(handler.path)
        if body is None:
            handler.send_error(404)
            return
        start = 0
        if wanted and not self.ignore_range:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) - start))
        handler.end_headers()
        payload = body[start:]
        if self.drop_once:
            self.drop_once = False
            payload = payload[: len(payload) // 2]
            handler.close_connection = True
        handler.wfile.write(payload)
        handler.wfile.flush()


@pytest.fixture
def server():
    served = Server()
    served.thread.start()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()
    served.thread.join(TIMEOUT)


# --------------------------------------------------------------------------
# the registry (recipe modules not written yet are stubbed here, never in src)


@pytest.fixture
def registry(monkeypatch):
    for name in RECIPE_MODULES:
        full = f"earmark.data.recipes.{name}"
        if not module_file(name).exists():
            stub = types.ModuleType(full)
            stub.RECIPES = ()
            monkeypatch.setitem(sys.modules, full, stub)
    return importlib.import_module("earmark.data.recipes")


def module_file(name: str) -> Path:
    import earmark

    return Path(earmark.__file__).parent / "data" / "recipes" / f"{name}.py"


def remote_file(name: str, body: bytes, url: str, checksum: str = "sha256", size=True):
    from earmark.data.recipes.recipe import RemoteFile

    digest = {"sha256": hashlib.sha256(body).hexdigest(), "md5": None}
    if checksum == "md5":
        digest = {"sha256": None, "md5": hashlib.md5(body).hexdigest()}
    elif checksum == "none":
        digest = {"sha256": None, "md5": None}
    return RemoteFile(name=name, url=url, size=len(body) if size else None, **digest)


def recorder(counted: list):
    """A progress that records its total and every step into ``counted``."""
    import contextlib

    @contextlib.contextmanager
    def progress(total, description, unit):
        counted.append((total, description, unit))
        yield counted.append

    return progress


def payload(size: int = 300_000) -> bytes:
    return bytes((i * 7919 + i // 256) % 251 for i in range(size))


# --------------------------------------------------------------------------
# fetch


def test_download_is_verified_and_written_whole(registry, server, tmp_path):
    from earmark.data.recipes.download import fetch

    body = payload()
    server.files["/a.bin"] = body
    for checksum in ("sha256", "md5", "none"):
        folder = tmp_path / checksum
        remote = remote_file("a.bin", body, server.base + "/a.bin", checksum)
        path = fetch(remote, folder, mirror="", timeout=TIMEOUT)
        assert path.read_bytes() == body
        assert sorted(p.name for p in folder.iterdir()) == ["a.bin"]


def test_a_dropped_connection_is_resumed_with_a_range(registry, server, tmp_path):
    from earmark.data.recipes.download import fetch

    body = payload()
    server.files["/a.bin"] = body
    server.drop_once = True
    counted: list = []
    path = fetch(remote_file("a.bin", body, server.base + "/a.bin"), tmp_path, mirror="",
                 progress=recorder(counted), timeout=TIMEOUT)
    assert counted[0] == (len(body), "a.bin", "B") and sum(counted[1:]) == len(body)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(body).hexdigest()
    assert len(server.requests) == 2
    assert server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={len(body) // 2}-"
    assert not (tmp_path / "a.bin.part").exists()


def test_a_part_left_by_an_earlier_run_is_resumed_or_restarted(registry, server, tmp_path):
    from earmark.data.recipes.download import fetch

    body = payload()
    server.files["/a.bin"] = body
    remote = remote_file("a.bin", body, server.base + "/a.bin")
    for ignore_range in (False, True):
        folder = tmp_path / str(ignore_range)
        folder.mkdir()
        (folder / "a.bin.part").write_bytes(body[:1000])
        server.ignore_range = ignore_range
        counted: list = []
        path = fetch(remote, folder, mirror="", progress=recorder(counted), timeout=TIMEOUT)
        assert path.read_bytes() == body and sum(counted[1:]) == len(body)
    assert [r[1] for r in server.requests] == ["bytes=1000-", "bytes=1000-"]


def test_both_published_checksums_are_checked(registry, server, tmp_path):
    from earmark.data.recipes.download import fetch
    from earmark.data.recipes.recipe import RemoteFile

    body = payload(5000)
    server.files["/a.bin"] = body
    sha256, md5 = hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest()
    good = RemoteFile("a.bin", server.base + "/a.bin", len(body), sha256=sha256, md5=md5)
    assert fetch(good, tmp_path / "good", mirror="", timeout=TIMEOUT).read_bytes() == body
    for wrong in ({"sha256": sha256, "md5": "0" * 32}, {"sha256": "0" * 64, "md5": md5}):
        remote = RemoteFile("a.bin", server.base + "/a.bin", len(body), **wrong)
        algorithm = "md5" if wrong["md5"] == "0" * 32 else "sha256"
        with pytest.raises(DataError, match=rf"a\.bin.*its {algorithm} is.*deleted"):
            fetch(remote, tmp_path / algorithm, mirror="", timeout=TIMEOUT)
        assert list((tmp_path / algorithm).iterdir()) == []


def test_a_wrong_checksum_is_refused_and_nothing_is_left(registry, server, tmp_path):
    from earmark.data.recipes.download import fetch
    from earmark.data.recipes.recipe import RemoteFile

    body = payload()
    server.files["/a.bin"] = body
    remote = RemoteFile("a.bin", server.base + "/a.bin", len(body), sha256="0" * 64)
    with pytest.raises(DataError, match=r"a\.bin.*sha256.*deleted"):
        fetch(remote, tmp_path, mirror="", timeout=TIMEOUT)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_file_is_a_clear_error(registry, server, tmp_path):
    from earmark.data.recipes.download import fetch

    remote = remote_file("gone.bin", b"x", server.base + "/gone.bin")
    with pytest.raises(DataError, match="404"):
        fetch(remote, tmp_path, mirror="", timeout=TIMEOUT)


def test_a_mirror_replaces_scheme_and_host(registry, server, tmp_path, monkeypatch):
    from earmark.data.recipes.download import fetch, mirrored_url

    assert (mirrored_url("https://example.org/d/a.tgz?x=1", "http://m:81/cache/")
            == "http://m:81/cache/d/a.tgz?x=1")
    with pytest.raises(ConfigError, match="mirror"):
        mirrored_url("https://example.org/a", "ftp:/nothing")
    body = payload(5000)
    server.files["/d/a.bin"] = body
    remote = remote_file("a.bin", body, "https://unreachable.invalid/d/a.bin")
    assert fetch(remote, tmp_path / "arg", mirror=server.base, timeout=TIMEOUT).exists()
    monkeypatch.setenv("EARMARK_DATASET_MIRROR", server.base)
    assert fetch(remote, tmp_path / "env", timeout=TIMEOUT).read_bytes() == body
    assert [r[0] for r in server.requests] == ["/d/a.bin", "/d/a.bin"]


def test_too_little_disk_space_is_refused_before_starting(registry, server, tmp_path,
                                                           monkeypatch):
    from earmark.data.recipes import download
    from earmark.data.recipes.recipe import RemoteFile

    remote = RemoteFile("huge.bin", server.base + "/huge.bin", size=10**15)
    with pytest.raises(DataError, match="free"):
        download.fetch(remote, tmp_path, mirror="", timeout=TIMEOUT)
    assert server.requests == []


# --------------------------------------------------------------------------
# extract


def tar_bytes(members: list[tarfile.TarInfo], data: bytes = b"hello") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_a_tar_is_unpacked_once(registry, tmp_path):
    from earmark.data.recipes.extract import extract

    archive = tmp_path / "good.tar.gz"
    archive.write_bytes(tar_bytes([member("d", tarfile.DIRTYPE), member("d/a.wav")]))
    target = tmp_path / "root" / "data"
    assert extract(archive, target) == target
    assert (target / "d" / "a.wav").read_bytes() == b"hello"
    (target / "d" / "a.wav").write_bytes(b"changed")
    extract(archive, target)
    assert (target / "d" / "a.wav").read_bytes() == b"changed"
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["data"]


@pytest.mark.parametrize("bad", [
    member("../../evil"), member("/abs/path"), member("ok/../../evil"),
    member("d/link", tarfile.SYMTYPE, "/etc/passwd"), member("d/hard", tarfile.LNKTYPE, "x"),
    member("d/dev", tarfile.CHRTYPE), member("d/fifo", tarfile.FIFOTYPE)])
def test_unsafe_tar_members_are_refused_and_nothing_is_left(registry, tmp_path, bad):
    from earmark.data.recipes.extract import extract

    archive = tmp_path / "bad.tgz"
    archive.write_bytes(tar_bytes([member("fine.wav"), bad]))
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DataError) as caught:
        extract(archive, root / "data")
    assert repr(bad.name) in str(caught.value)
    assert list(root.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not Path("/abs/path").exists()


def test_zip_slip_is_refused_and_nothing_is_left(registry, tmp_path):
    from earmark.data.recipes.extract import extract

    root = tmp_path / "root"
    root.mkdir()
    for bad in ("../evil.wav", "/abs/evil.wav", "a\\..\\..\\evil.wav", "C:\\evil.wav"):
        archive = tmp_path / "bad.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("fine.wav", b"ok")
            zipped.writestr(zipfile.ZipInfo(bad), b"evil")
        with pytest.raises(DataError, match="evil"):
            extract(archive, root / "data")
        assert list(root.iterdir()) == []
    assert not (tmp_path / "evil.wav").exists()


def test_a_zip_symlink_is_refused(registry, tmp_path):
    from earmark.data.recipes.extract import extract

    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zipped.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="'link'.*link"):
        extract(archive, tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_a_corrupt_archive_is_a_clear_error(registry, tmp_path):
    from earmark.data.recipes.extract import extract

    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(tar_bytes([member("a.wav")])[:20])
    with pytest.raises(DataError, match="corrupt or truncated"):
        extract(archive, tmp_path / "data")
    assert [p.name for p in tmp_path.iterdir()] == ["cut.tar.gz"]


# --------------------------------------------------------------------------
# the registry and the CLI


def wav_bytes(seconds: float = 0.05, rate: int = 8000) -> bytes:
    """A short tone as the bytes of a 16-bit WAV file."""
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    tone = 0.3 * np.sin(np.arange(int(seconds * rate)) * 0.3)
    soundfile.write(buffer, tone.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def toy_recipe(server, name: str = "toy_digits"):
    from earmark.data.manifest import Manifest, Row
    from earmark.data.recipes.recipe import Recipe

    def build(folder: Path) -> Manifest:
        return Manifest(Row(str(p), p.parent.name, p.stem, "train")
                        for p in sorted(folder.rglob("*.wav")))

    body = tar_bytes([member("toy/one/a.wav"), member("toy/two/b.wav")], wav_bytes())
    server.files["/files/toy.tar.gz"] = body
    remote = remote_file("toy.tar.gz", body, "https://example.invalid/files/toy.tar.gz")
    return Recipe(name, "Toy digits", "testing the download", "CC0 (test licence)",
                  "1 kB", "toy_digits", (remote,), build)


def test_unknown_dataset_names_the_nearest(registry, server, monkeypatch):
    monkeypatch.setitem(registry.RECIPES, "toy_digits", toy_recipe(server))
    assert registry.get_recipe("toy_digits").title == "Toy digits"
    with pytest.raises(ConfigError, match=r"'toy_digit'.*did you mean 'toy_digits'"):
        registry.get_recipe("toy_digit")


def test_duplicate_recipe_names_are_refused(registry, server):
    module = types.ModuleType("twice")
    module.RECIPES = (toy_recipe(server), toy_recipe(server))
    with pytest.raises(ConfigError, match="toy_digits.*twice"):
        registry.collect([module])


def test_cli_lists_every_recipe(registry, server, monkeypatch, capsys):
    from earmark.cli import main

    monkeypatch.setitem(registry.RECIPES, "toy_digits", toy_recipe(server))
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    for recipe in registry.RECIPES.values():
        assert recipe.name in out and recipe.licence in out and recipe.size_text in out


def test_cli_download_then_again_makes_no_request(registry, server, monkeypatch, tmp_path,
                                                 capsys):
    from earmark.cli import main

    monkeypatch.setitem(registry.RECIPES, "toy_digits", toy_recipe(server))
    argv = ["datasets", "download", "toy_digits", "--root", str(tmp_path),
            "--mirror", server.base, "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.index("CC0 (test licence)") < out.index("manifest")
    manifest = tmp_path / "toy_digits" / "manifest.csv"
    lines = manifest.read_text().splitlines()
    assert len(lines) == 3 and "toy/one/a.wav" in lines[1]
    assert len(server.requests) == 1
    assert main(argv) == 0
    assert len(server.requests) == 1
    assert main(["datasets", "manifest", "toy_digits", "--root", str(tmp_path),
                 "--out", str(tmp_path / "m.csv"), "-q"]) == 0
    assert len((tmp_path / "m.csv").read_text().splitlines()) == 3


def test_recipes_sharing_a_folder_keep_their_own_manifests(registry, server, monkeypatch,
                                                          tmp_path):
    from earmark.cli import main

    monkeypatch.setitem(registry.RECIPES, "toy_digits", toy_recipe(server))
    monkeypatch.setitem(registry.RECIPES, "toy_digits_12", toy_recipe(server, "toy_digits_12"))
    for name in ("toy_digits", "toy_digits_12"):
        assert main(["datasets", "download", name, "--root", str(tmp_path),
                     "--mirror", server.base, "-q"]) == 0
    folder = tmp_path / "toy_digits"
    assert (folder / "manifest-toy_digits.csv").exists()
    assert (folder / "manifest-toy_digits_12.csv").exists()
    assert len(server.requests) == 1


def test_cli_manifest_of_a_missing_folder_says_what_to_do(registry, server, monkeypatch,
                                                          tmp_path, capsys):
    from earmark.cli import main

    monkeypatch.setitem(registry.RECIPES, "toy_digits", toy_recipe(server))
    assert main(["datasets", "manifest", "toy_digits", "--root", str(tmp_path)]) == 2
    assert "earmark datasets download toy_digits" in capsys.readouterr().err


# --------------------------------------------------------------------------
# the unpacked copy: every recording opens, and as many as the dataset documents

FSDD_PATH = "/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"


def fsdd_zip(damaged: dict[str, bytes] | None = None) -> bytes:
    """FSDD's release archive: ``free-spoken-digit-dataset-1.0.10/recordings/`` with six
    recordings (two digits, one speaker, three takes); ``damaged`` replaces some bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("free-spoken-digit-dataset-1.0.10/README.md", "FSDD")
        for digit in range(2):
            for take in range(3):
                name = f"{digit}_theo_{take}.wav"
                data = (damaged or {}).get(name, wav_bytes())
                zipped.writestr(f"free-spoken-digit-dataset-1.0.10/recordings/{name}", data)
    return buffer.getvalue()


def test_a_short_download_is_an_error_and_a_short_folder_a_warning(registry, server,
                                                                   monkeypatch, tmp_path,
                                                                   capsys):
    from dataclasses import replace

    from earmark.cli import main

    server.files[FSDD_PATH] = fsdd_zip()
    download = ["datasets", "download", "fsdd", "--root", str(tmp_path),
                "--mirror", server.base, "-q"]
    assert main(download) == 2
    error = capsys.readouterr().err
    assert "6 recording(s) where the complete dataset has 3,000 (2,994 missing)" in error
    assert "earmark datasets download fsdd" in error
    folder = tmp_path / "fsdd"
    assert (folder / "free-spoken-digit-dataset-1.0.10" / "recordings").is_dir()
    assert not (folder / "manifest.csv").exists()
    # The same folder as one's own copy (a subset is legitimate): a warning, and the manifest.
    assert main(["datasets", "manifest", "fsdd", "--root", str(tmp_path), "-q"]) == 0
    error = capsys.readouterr().err
    assert "warning" in error and "has 3,000 (2,994 missing)" in error
    assert len((folder / "manifest.csv").read_text().splitlines()) == 1 + 6
    # A dataset whose documented count is met downloads quietly (from the verified archive).
    monkeypatch.setitem(registry.RECIPES, "fsdd",
                        replace(registry.RECIPES["fsdd"], expected_recordings=6))
    (folder / "manifest.csv").unlink()
    assert main(download) == 0
    assert "warning" not in capsys.readouterr().err
    assert (folder / "manifest.csv").exists() and len(server.requests) == 1


def test_a_damaged_copy_is_refused_naming_every_bad_file(registry, server, monkeypatch,
                                                          tmp_path, capsys):
    from dataclasses import replace

    from earmark.cli import main

    monkeypatch.setitem(registry.RECIPES, "fsdd",
                        replace(registry.RECIPES["fsdd"], expected_recordings=6))
    whole = wav_bytes()
    server.files[FSDD_PATH] = fsdd_zip({"0_theo_1.wav": whole[: len(whole) // 2],
                                        "1_theo_2.wav": b""})
    assert main(["datasets", "download", "fsdd", "--root", str(tmp_path),
                 "--mirror", server.base, "-q"]) == 2
    error = capsys.readouterr().err
    assert "2 of 6 recording(s) cannot be read" in error
    assert "recordings/0_theo_1.wav (truncated" in error
    assert "recordings/1_theo_2.wav (the file is empty (0 bytes))" in error
    assert "earmark datasets download fsdd" in error and "replace these files" in error
    folder = tmp_path / "fsdd"
    assert not (folder / "manifest.csv").exists()
    # The same report for the folder as one's own copy, with nothing written.
    out = tmp_path / "fsdd.csv"
    assert main(["datasets", "manifest", "fsdd", "--root", str(tmp_path), "--out", str(out),
                 "-q"]) == 2
    error = capsys.readouterr().err
    assert "0_theo_1.wav (truncated" in error and "1_theo_2.wav (the file is empty" in error
    assert not out.exists()
