"""`python -m hf_tasks.data.fetch`: stand-in files served from 127.0.0.1 are downloaded, resumed after a cut
connection, refused on a hash mismatch (nothing left where a recipe reads), taken from `--from FILE`, and
unpacked from archives; the real registry is pinned; a recipe's missing default data names the command. The
command line is parsed as a recipe's (options from a config, one-line errors naming the flag) and imports no
torch."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hf_tasks.options import DataArguments
from hf_tasks.data.fetch import SOURCES, FetchError, RemoteFile, Source, fetch, file_hash, main
from hf_tasks.data.sources import load_splits
from hf_tasks.errors import BadInputError
from tests.conftest import REPO

TRAIN = "".join(f'{{"id": {index}, "question": "پرسش {index}"}}\n' for index in range(10_000)).encode()
VALIDATION = b"id,text\n1,hello\n2,world\n"


def sha256(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def git_blob(content: bytes) -> str:
    return "gitblob:" + hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class StandIns:
    """A local HTTP server for the test's files: honours Range requests, records each request's Range
    header, and can cut the connection of the first `cuts` answers after `cut_after` bytes."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.ranges, self.cuts, self.cut_after = files, [], 0, 0
        stand_ins = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                content = stand_ins.files.get(self.path)
                if content is None:
                    self.send_error(404)
                    return
                asked = self.headers.get("Range")
                stand_ins.ranges.append(asked)
                start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1)) if asked else 0
                body = content[start:]
                self.send_response(206 if asked else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if stand_ins.cuts:
                    stand_ins.cuts -= 1
                    self.wfile.write(body[: stand_ins.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def resumed_at(range_header: str | None) -> int:
    return int(re.fullmatch(r"bytes=(\d+)-", range_header or "bytes=0-").group(1))


@pytest.fixture
def no_waiting(monkeypatch):
    """pooch waits a second or more between retries; the stand-in server needs no patience."""
    monkeypatch.setattr("pooch.core.time.sleep", lambda seconds: None)


def text_source(server: StandIns, train_hash: str | None = None) -> dict[str, Source]:
    return {"toy": Source("toy", "two files", (
        RemoteFile(server.url("/commit/Train.json"), train_hash or git_blob(TRAIN), "train.json"),
        RemoteFile(server.url("/commit/Val.csv"), sha256(VALIDATION), "validation.csv", size=len(VALIDATION)),
    ))}


def test_files_are_downloaded_checked_and_laid_out_and_a_second_run_keeps_them(tmp_path, no_waiting):
    with StandIns({"/commit/Train.json": TRAIN, "/commit/Val.csv": VALIDATION}) as server:
        folder = fetch("toy", tmp_path / "data", sources=text_source(server), progress=False)
        assert (folder / "train.json").read_bytes() == TRAIN
        assert (folder / "validation.csv").read_bytes() == VALIDATION
        assert sorted(path.name for path in folder.iterdir()) == ["train.json", "validation.csv"]  # no leftovers
        served = len(server.ranges)
        fetch("toy", tmp_path / "data", sources=text_source(server), progress=False)
        assert len(server.ranges) == served  # already in place: nothing downloaded again


def test_a_cut_connection_is_resumed_from_what_arrived(tmp_path, no_waiting):
    with StandIns({"/commit/Train.json": TRAIN, "/commit/Val.csv": VALIDATION}) as server:
        server.cuts, server.cut_after = 1, 300_000
        folder = fetch("toy", tmp_path / "data", sources=text_source(server), progress=False)
        assert (folder / "train.json").read_bytes() == TRAIN
        first, second = server.ranges[:2]
        assert first is None and 0 < resumed_at(second) <= 300_000  # the second try asked only for the rest


def test_a_cut_with_no_retries_left_keeps_the_part_and_the_next_run_resumes_it(tmp_path, no_waiting, monkeypatch):
    monkeypatch.setattr("hf_tasks.data.fetch.RETRIES", 0)
    with StandIns({"/commit/Train.json": TRAIN, "/commit/Val.csv": VALIDATION}) as server:
        server.cuts, server.cut_after = 1, 300_000
        cut = r"could not download http://127.0.0.1:\d+/commit/Train.json \(ChunkedEncodingError.*resumes it"
        with pytest.raises(FetchError, match=cut):
            fetch("toy", tmp_path / "data", sources=text_source(server), progress=False)
        assert not (tmp_path / "data" / "toy" / "train.json").exists()
        kept = (tmp_path / "data" / "toy" / "train.json.part").stat().st_size
        assert 0 < kept <= 300_000
        fetch("toy", tmp_path / "data", sources=text_source(server), progress=False)
        assert (tmp_path / "data" / "toy" / "train.json").read_bytes() == TRAIN
        assert server.ranges[-2] == f"bytes={kept}-"  # then Val.csv, whole


@pytest.mark.parametrize("wrong", ["git blob", "sha256"])
def test_a_file_that_is_not_the_pinned_one_is_refused_and_not_left_where_the_recipe_reads(tmp_path, no_waiting, wrong):
    tampered = TRAIN.replace(b"9999", b"1111")
    files = {"/commit/Train.json": tampered, "/commit/Val.csv": VALIDATION}
    with StandIns(files) as server:
        sources = text_source(server) if wrong == "git blob" else text_source(server, train_hash=sha256(TRAIN))
        with pytest.raises(FetchError, match=r"Train.json is not the pinned file .*nothing was put at .*train.json"):
            fetch("toy", tmp_path / "data", sources=sources, progress=False)
    # No partial or temporary file either, nor the folders this fetch made for them.
    assert not (tmp_path / "data").exists()


def test_an_unreachable_source_names_the_url_and_the_from_option(tmp_path, no_waiting):
    with StandIns({}) as server:
        unreachable = r"could not download .*/commit/Train.json \(HTTP 404, after 4 tries\).*--from FILE"
        with pytest.raises(FetchError, match=unreachable):
            fetch("toy", tmp_path / "data", sources=text_source(server), progress=False)


def test_from_file_is_checked_and_laid_out_and_a_wrong_one_is_refused(tmp_path, no_waiting):
    by_hand = tmp_path / "Downloads"
    by_hand.mkdir()
    (by_hand / "Train.json").write_bytes(TRAIN)
    (by_hand / "Val.csv").write_bytes(VALIDATION)
    (by_hand / "other.csv").write_bytes(b"id,text\n")
    with StandIns({}) as server:  # nothing served: every file comes from --from
        sources = text_source(server)
        with pytest.raises(FetchError, match=r"--from .*other.csv: not one of toy's pinned files"):
            fetch("toy", tmp_path / "data", [by_hand / "other.csv"], sources=sources, progress=False)
        folder = fetch("toy", tmp_path / "data", [by_hand / "Val.csv", by_hand / "Train.json"], sources=sources,
                       progress=False)
        assert server.ranges == []
    assert (folder / "train.json").read_bytes() == TRAIN and (folder / "validation.csv").read_bytes() == VALIDATION
    assert (by_hand / "Train.json").exists()  # copied, the user's file stays


def test_a_different_file_already_in_place_is_left_alone(tmp_path, no_waiting):
    folder = tmp_path / "data" / "toy"
    folder.mkdir(parents=True)
    (folder / "train.json").write_bytes(b"my own annotations")
    with StandIns({"/commit/Train.json": TRAIN, "/commit/Val.csv": VALIDATION}) as server:
        with pytest.raises(FetchError, match=r"train.json exists but is not toy's pinned Train.json .*move it away"):
            fetch("toy", tmp_path / "data", sources=text_source(server), progress=False)
    assert (folder / "train.json").read_bytes() == b"my own annotations"


def test_archives_are_unpacked_into_the_folder_the_adapter_reads(tmp_path, no_waiting):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("female/F01A01.wav", b"RIFF-one")
        archive.writestr("female/F01H02.wav", b"RIFF-two")
    content = buffer.getvalue()
    with StandIns({"/media/commit/female.zip": content}) as server:
        sources = {"clips": Source("Clips", "one archive", (
            RemoteFile(server.url("/media/commit/female.zip"), sha256(content), "female", size=len(content),
                       archive=True),))}
        folder = fetch("clips", tmp_path / "data", sources=sources, progress=False)
    assert sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.wav")) == [
        "female/female/F01A01.wav", "female/female/F01H02.wav"]
    assert not any((tmp_path / "data" / ".downloads").rglob("*.zip"))  # the archive goes once unpacked


def test_a_tarball_folder_becomes_the_dataset_folder_and_mac_resource_forks_are_left_out(tmp_path, no_waiting):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in (("cifar-10-batches-py/batches.meta", b"meta"), ("cifar-10-batches-py/test_batch", b"t"),
                              ("__MACOSX/cifar-10-batches-py/._test_batch", b"fork")):
            member = tarfile.TarInfo(name)
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))
    content = buffer.getvalue()
    with StandIns({"/cifar-10-python.tar.gz": content}) as server:
        sources = {"images": Source("images", "one tarball", (
            RemoteFile(server.url("/cifar-10-python.tar.gz"), "md5:" + hashlib.md5(content).hexdigest(), "",
                       archive=True, archive_root="cifar-10-batches-py"),))}
        folder = fetch("images", tmp_path / "data", sources=sources, progress=False)
    assert sorted(path.name for path in folder.iterdir()) == ["batches.meta", "test_batch"]
    # The archive went once unpacked, and with it the download folder it alone used.
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == ["images"]


def test_the_real_registry_is_pinned_to_commits_with_hashes():
    for name, source in SOURCES.items():
        assert source.files, name
        for file in source.files:
            algorithm, _, digest = file.known_hash.partition(":")
            assert (algorithm, len(digest)) in {("sha256", 64), ("md5", 32), ("gitblob", 40)}, file
            assert re.fullmatch(r"[0-9a-f]+", digest), file
            if "github" in file.url:
                assert re.search(r"/[0-9a-f]{40}/", file.url), f"{file.url} is not pinned to a commit"
    assert {name for name in SOURCES} == {"pquad", "farstail", "constraint", "shemo", "cifar10"}


def test_the_cifar10_entry_is_torchvisions_archive_and_md5():
    from torchvision.datasets import CIFAR10

    (archive,) = SOURCES["cifar10"].files
    assert archive.url == CIFAR10.url and archive.known_hash == f"md5:{CIFAR10.tgz_md5}"
    assert archive.archive_root == CIFAR10.base_folder


def test_git_blob_hash_is_gits_object_id(tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    # `git hash-object hello.txt` for this content.
    assert file_hash(path, "gitblob:") == "gitblob:ce013625030ba8dba906f756967f9e9ca394464a"


def test_each_recipes_real_configs_read_the_data_where_the_fetch_their_base_names_puts_it():
    import yaml

    from hf_tasks import registry

    checked = []
    for recipe in registry.recipe_names():
        base = registry.configs_folder(recipe) / "base.yaml"
        if not base.is_file():
            continue
        text = base.read_text(encoding="utf-8")
        names = re.findall(r"`hf-tasks fetch (\w+)`", text)
        assert len(names) == 1, f"{base}: its comment names no fetch command (or several)"
        config, source = yaml.safe_load(text), SOURCES[names[0]]
        if "dataset_name" in config:  # a hub dataset, the fetched copy given as --data_dir instead
            assert f"--data_dir data/{source.folder}" in text, base
        elif "data_dir" in config:
            assert config["data_dir"] == f"data/{source.folder}", base
        else:
            files = {config[key] for key in ("train_file", "validation_file", "test_file")}
            assert files == {f"data/{source.folder}/{file.place}" for file in source.files}, base
        checked.append(recipe)
    assert set(checked) == {name for name in registry.recipe_names() if registry.load(name).trains}


def test_a_missing_default_data_file_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data_args = DataArguments(train_file="data/pquad/train.json")
    with pytest.raises(BadInputError, match=r"no such file .*Get it with `hf-tasks fetch pquad`"):
        load_splits(data_args, lambda path, split: None)


def test_the_command_line_refuses_an_unknown_dataset():
    with pytest.raises(BadInputError, match="mnist: no such dataset; choose one of pquad, farstail, constraint"):
        main(["mnist"])


def fetched_with(monkeypatch, *argv: str) -> dict:
    """What the command line asks `fetch` for."""
    asked = {}
    monkeypatch.setattr("hf_tasks.data.fetch.fetch", lambda name, root, given, progress: asked.update(
        name=name, root=root, given=given) or Path(root) / name)
    main(list(argv))
    return asked


def test_the_options_may_come_from_a_config_and_from_files_beside_it(tmp_path, monkeypatch):
    (tmp_path / "Downloads").mkdir()
    (tmp_path / "Downloads" / "Train.json").write_bytes(TRAIN)
    config = tmp_path / "fetch.yaml"
    config.write_text("to: /scratch/data\nfrom: [Downloads/Train.json]\n")
    monkeypatch.chdir(tmp_path / "Downloads")
    assert fetched_with(monkeypatch, "pquad", "--config", str(config)) == {
        "name": "pquad", "root": "/scratch/data", "given": [str(tmp_path / "Downloads" / "Train.json")]}
    assert fetched_with(monkeypatch, "pquad", "--config", str(config), "--from_files", "Train.json", "--to",
                        "data") == {"name": "pquad", "root": "data", "given": ["Train.json"]}


@pytest.mark.parametrize("argv, message", [
    (["pquad", "--fro", "Train.json"], "unknown option(s): --fro Train.json (did you mean --from or --from_files? "
                                       "flags are not abbreviated); python -m hf_tasks.data.fetch"),
    (["pquad", "--to"], "--to expects one value(s); python -m hf_tasks.data.fetch --help lists the options."),
    (["--to", "data", "pquad"], "give NAME before the options (got none); python -m hf_tasks.data.fetch --help"),
])
def test_a_command_line_mistake_is_one_line_naming_the_flag_and_the_program_run(argv, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "hf_tasks.data.fetch", *argv], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert message in done.stderr


def test_a_fetch_imports_no_torch(tmp_path):
    # The command downloads files; torch would cost seconds for nothing.
    code = ("import sys\nfrom hf_tasks import command\n"
            "try:\n    command.main(['fetch', 'pquad', '--from', 'missing'])\n"
            "except SystemExit as exited:\n    print(exited.code, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stderr
    assert "--from missing: no such file" in done.stderr


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def clips_source(server: StandIns, content: bytes) -> dict[str, Source]:
    return {"clips": Source("Clips", "one archive", (
        RemoteFile(server.url("/media/female.zip"), sha256(content), "female", size=len(content), archive=True),))}


def test_from_a_partial_set_places_the_given_files_and_names_the_from_that_completes_it(tmp_path, no_waiting):
    by_hand = tmp_path / "Downloads"
    by_hand.mkdir()
    (by_hand / "Val.csv").write_bytes(VALIDATION)
    with StandIns({}) as server:  # nothing served: nothing is downloaded when files are given
        sources = text_source(server)
        with pytest.raises(FetchError) as stopped:
            fetch("toy", tmp_path / "data", [by_hand / "Val.csv"], sources=sources, progress=False)
        assert server.ranges == []
    message = str(stopped.value)
    assert "placed " + str(tmp_path / "data" / "toy" / "validation.csv") in message
    assert "still missing train.json" in message and server.url("/commit/Train.json") in message
    assert f"--to {tmp_path / 'data'} --from Train.json`" in message and "\n" not in message
    assert (tmp_path / "data" / "toy" / "validation.csv").read_bytes() == VALIDATION
    assert not (tmp_path / "data" / "toy" / "train.json").exists()


def test_a_failed_fetch_leaves_no_empty_folder_behind(tmp_path, no_waiting):
    (tmp_path / "data").mkdir()  # the user's data folder stays; the dataset's folder this fetch made goes
    with StandIns({}) as server:
        with pytest.raises(FetchError, match="could not download"):
            fetch("toy", tmp_path / "data", sources=text_source(server), progress=False)
        with pytest.raises(FetchError, match="could not download"):
            fetch("clips", tmp_path / "data", sources=clips_source(server, b"zip"), progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def test_leftovers_of_a_killed_fetch_are_removed_and_the_users_files_kept(tmp_path, no_waiting):
    content = zipped({"female/F01A01.wav": b"RIFF-one"})
    clips = tmp_path / "data" / "Clips"
    (clips / ".female-k2j4h5g6").mkdir(parents=True)  # a staging folder, half unpacked
    (clips / ".female-k2j4h5g6" / "F01A01.wav").write_bytes(b"RI")
    (clips / ".female-notes").mkdir()  # not a staging folder's name: the user's
    downloads = tmp_path / "data" / ".downloads" / "clips"
    downloads.mkdir(parents=True)
    (downloads / "tmpab12cd34").touch()  # pooch's temporary file, empty: the download was killed
    (clips / "tmpzz99yy88").write_text("mine")  # not empty: not pooch's
    with StandIns({"/media/female.zip": content}) as server:
        fetch("clips", tmp_path / "data", sources=clips_source(server, content), progress=False)
    assert sorted(path.name for path in clips.iterdir()) == [".female-notes", "female", "tmpzz99yy88"]
    assert list(downloads.iterdir()) == []  # the empty temporary file went, and the archive once unpacked


def test_unpacked_folders_get_the_users_umask(tmp_path, no_waiting):
    content = zipped({"female/F01A01.wav": b"RIFF-one"})
    previous = os.umask(0o022)
    try:
        with StandIns({"/media/female.zip": content}) as server:
            folder = fetch("clips", tmp_path / "data", sources=clips_source(server, content), progress=False)
    finally:
        os.umask(previous)
    assert (folder / "female").stat().st_mode & 0o777 == 0o755  # mkdtemp's 0700 before


@pytest.mark.parametrize("member", ["../../outside.txt", "absolute", "link"])
def test_tar_members_never_land_outside_the_folder_and_a_bad_archive_is_refused_in_one_line(tmp_path, no_waiting,
                                                                                          member):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        # An absolute path is unpacked below the staging folder (the data filter strips the slash), then
        # found to hold no cifar-10-batches-py folder.
        name = {"link": "cifar-10-batches-py/link", "absolute": str(tmp_path / "outside.txt")}.get(member, member)
        entry = tarfile.TarInfo(name)
        if member == "link":
            entry.type, entry.linkname = tarfile.SYMTYPE, "/etc/passwd"
        else:
            entry.size = 1
        archive.addfile(entry, io.BytesIO(b"x"))
    content = buffer.getvalue()
    with StandIns({"/cifar.tar.gz": content}) as server:
        sources = {"images": Source("images", "one tarball", (
            RemoteFile(server.url("/cifar.tar.gz"), sha256(content), "", archive=True,
                       archive_root="cifar-10-batches-py"),))}
        with pytest.raises(FetchError, match=r"cifar.tar.gz: .*(nothing was unpacked|no folder)"):
            fetch("images", tmp_path / "data", sources=sources, progress=False)
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "data" / "images").exists()
    assert not list((tmp_path / "data").glob(".*-*"))  # nor a staging folder


def test_to_a_file_and_a_target_that_is_a_folder_are_refused_in_one_line(tmp_path, capsys, no_waiting):
    (tmp_path / "a file").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "hf_tasks.data.fetch", "pquad", "--to", str(tmp_path / "a file")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "is a file; give --to a folder" in done.stderr
    assert (tmp_path / "a file").read_text() == "mine"
    (tmp_path / "data" / "toy" / "train.json").mkdir(parents=True)
    with StandIns({}) as server:
        with pytest.raises(FetchError, match=r"train.json is a folder, where toy's Train.json goes; .*move it away"):
            fetch("toy", tmp_path / "data", sources=text_source(server), progress=False)
    assert (tmp_path / "data" / "toy" / "train.json").is_dir()
