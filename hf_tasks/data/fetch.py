"""The seed datasets, fetched from their public sources into the folders the recipe configs read.

    hf-tasks fetch pquad                                # → data/pquad/{train,validation,test}.json
    hf-tasks fetch shemo --to /scratch/data
    hf-tasks fetch pquad --from ~/Downloads/Train.json  # a file fetched by hand

(`python -m hf_tasks.data.fetch` is the same command.)

Every file is pinned: a URL at one commit of the dataset's repository (or torchvision's CIFAR-10 archive)
and its hash (sha256, md5, or git's blob id, which GitHub shows for files it stores itself). `pooch`
downloads it beside its place with a progress bar, checks the hash and only then gives it its name, so
a recipe never reads a file that is cut short or not the pinned one. What arrived before a cut connection
is kept in `<file>.part` and the rest is asked for (HTTP Range), by pooch's retries or by rerunning the
command. Archives (ShEMO's zips, CIFAR-10's tarball) are unpacked whole into their folder, then removed:
into a hidden staging folder first (tar members through tarfile's `data` filter: no absolute paths, `..`
or links leading out), moved into place with the user's umask; a staging folder or an empty pooch
temporary file that a killed fetch left is removed by the next one. A file already in place with the
pinned hash is kept; one with another hash is the user's, and stops the command untouched.

`--from` files place what they are; the set's other files are not downloaded then: the command names
them and the `--from` that completes the set. A fetch that fails leaves no empty folder behind.
"""

from __future__ import annotations

import hf_tasks.help_cache  # noqa: F401  (`python -m hf_tasks.data.fetch --help`: a cached answer, before the parser)

import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hf_tasks.errors import BadInputError, one_line_errors
from hf_tasks.files import atomic_path

DEFAULT_ROOT = "data"
# Archives wait here (under --to) until they are unpacked.
DOWNLOADS = ".downloads"
PARTIAL_SUFFIX = ".part"
# pooch's retries after a failed try; each one resumes from what arrived.
RETRIES = 3
CHUNK_BYTES = 1 << 20
# What a cut connection can cost: a chunk that was arriving is lost with it.
DOWNLOAD_CHUNK_BYTES = 1 << 16


class FetchError(BadInputError):
    """A source that cannot be reached, a file that is not the pinned one, a place taken by other data."""


@dataclass(frozen=True)
class RemoteFile:
    url: str
    # "sha256:<hex>", "md5:<hex>" or "gitblob:<hex>" (git's blob id: SHA-1 of b"blob <size>\0" + content).
    known_hash: str
    # Where it goes, relative to the dataset's folder: the file's name there, or for an archive the folder
    # its contents go into ("" for the dataset's folder itself).
    place: str
    size: int | None = None
    archive: bool = False
    # The folder inside the archive whose contents are taken ("" for all of it).
    archive_root: str = ""

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Source:
    folder: str
    about: str
    files: tuple[RemoteFile, ...]


def _github(repository: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repository}/{commit}/{path}"


def _github_lfs(repository: str, commit: str, path: str) -> str:
    # raw.githubusercontent.com serves an LFS object's pointer; the media host serves its content.
    return f"https://media.githubusercontent.com/media/{repository}/{commit}/{path}"


PQUAD = ("AUT-NLP/PQuAD", "b1724102bdb2f00a61c8ca9f81250ceff9db1872")
FARSTAIL = ("dml-qom/FarsTail", "5d6322c40368ea5fab50e406e083e537a7d97817")
CONSTRAINT = ("diptamath/covid_fake_news", "030deba36d118c124709fd72d7d5f14c7bc69053")
SHEMO = ("mansourehk/ShEMO", "0db1b9343e08794d66ca2f5c3faa9533c923abcd")

SOURCES: dict[str, Source] = {
    "pquad": Source("pquad", "PQuAD, Persian extractive QA (recipes/parsquad.py)", (
        RemoteFile(_github(*PQUAD, "Dataset/Train.json"), "gitblob:561d1c7a1b3693f83ab709c45a8c0e41d561e48c",
                   "train.json"),
        RemoteFile(_github(*PQUAD, "Dataset/Validation.json"),
                   "sha256:56bda77e921c233236ce960c12ac6d99aa6a4a6d7706573e885842d37ab67396", "validation.json",
                   size=3_487_669),
        RemoteFile(_github(*PQUAD, "Dataset/Test.json"),
                   "sha256:50da77a97ddaf1fc6fb298c6591dbc2ec3e070cb5216419740a511cbd1ccc054", "test.json",
                   size=3_450_696),
    )),
    "farstail": Source("farstail", "FarsTail, Persian NLI (recipes/farstail.py)", (
        RemoteFile(_github(*FARSTAIL, "data/Train-word.csv"),
                   "sha256:552cfe796652dc5ea02d53cd23e8b9d1d6d243bbf05fea2d9f959e9b851fbdd3", "Train-word.csv"),
        RemoteFile(_github(*FARSTAIL, "data/Val-word.csv"),
                   "sha256:a1f2a8bec45a597f5971c58911fabf3d9f7574b819bf637ab94f08f7be1c963e", "Val-word.csv"),
        RemoteFile(_github(*FARSTAIL, "data/Test-word.csv"),
                   "sha256:d0dd25408036e5dd8587a8e0d98585b46b4a7d0057fece0992fb8d490ad44f4f", "Test-word.csv"),
    )),
    "constraint": Source("constraint", "Constraint@AAAI-2021 COVID fake news, a public copy "
                                       "(recipes/covid_fakenews.py)", (
        RemoteFile(_github(*CONSTRAINT, "data/Constraint_Train.csv"),
                   "sha256:441f3985bb76eb69d1e488cf292f80add96c4dddfa43ba7c060889607837ddce", "Constraint_Train.csv"),
        RemoteFile(_github(*CONSTRAINT, "data/Constraint_Val.csv"),
                   "sha256:c610931d0641fe1d9b9495c453f99ae7aa45bf294c7db6333ec84ecebb0b6c3c", "Constraint_Val.csv"),
        RemoteFile(_github(*CONSTRAINT, "data/english_test_with_labels.csv"),
                   "sha256:7152fc681884a22013218c5dd9a73c6fd99d4b084705723e1e49d18c97ca8281",
                   "english_test_with_labels.csv"),
    )),
    # The emotion, speaker and gender are in each clip's name; the transcripts are not needed.
    "shemo": Source("ShEMO", "ShEMO, Persian speech emotion, 3,000 clips (recipes/shemo.py)", (
        RemoteFile(_github_lfs(*SHEMO, "female.zip"),
                   "sha256:663d8d7dceb44adbbf87d84be3a080fb691d169fbd972f6941e6302bc39f71e6", "female",
                   size=374_368_830, archive=True),
        RemoteFile(_github_lfs(*SHEMO, "male.zip"),
                   "sha256:747670d0d918e59d5e5020cf66610242890b093d42968c467c4f02eb5e6a6b1a", "male",
                   size=496_606_401, archive=True),
    )),
    # torchvision's archive and MD5 (torchvision.datasets.CIFAR10.url / tgz_md5): the python batches that
    # `--data_dir data/cifar10` reads.
    "cifar10": Source("cifar10", "CIFAR-10, the python batches (recipes/cifar10.py --data_dir data/cifar10)", (
        RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                   "md5:c58f30108f718f92721af3b95e74349a", "", archive=True,
                   archive_root="cifar-10-batches-py"),
    )),
}


def fetch_command(name: str, root: str = DEFAULT_ROOT) -> str:
    return f"hf-tasks fetch {name}" + ("" if root == DEFAULT_ROOT else f" --to {root}")


def fetch_hint(path: str | Path) -> str:
    """" Get it with `hf-tasks fetch NAME`." when `path` is where fetch lays out one of its
    datasets' files or folders (under any --to), else ""."""
    parts = Path(path).parts
    for name, source in SOURCES.items():
        places = {(source.folder,)} | {(source.folder, *Path(file.place).parts) for file in source.files}
        for place in places:
            if len(parts) >= len(place) and tuple(parts[-len(place):]) == place:
                root = Path(*parts[:-len(place)]) if len(parts) > len(place) else Path(".")
                return f" Get it with `{fetch_command(name, root.as_posix())}`."
    return ""


# ---- hashes ----

def file_hash(path: Path, known_hash: str) -> str:
    """`path`'s hash in the algorithm `known_hash` names, written the same way ("sha256:<hex>")."""
    algorithm = known_hash.split(":", 1)[0]
    if algorithm == "gitblob":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    else:
        digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"


def matches(path: Path, file: RemoteFile) -> bool:
    if file.size is not None and path.stat().st_size != file.size:
        return False
    return file_hash(path, file.known_hash) == file.known_hash.lower()


# ---- download ----

class ResumingDownloader:
    """A pooch downloader that keeps what arrives in `partial` and, when a try is cut short, asks the
    server for the rest on the next one (HTTP Range). The whole file then moves to pooch's temporary
    file, which pooch checks against a sha256/md5; a git blob id, which pooch does not know, is checked
    here before the move."""

    def __init__(self, file: RemoteFile, partial: Path, progress: bool):
        self.file, self.partial, self.progress = file, partial, progress

    def __call__(self, url: str, output_file: str, pooch) -> None:
        import requests
        from tqdm.auto import tqdm

        have = self.partial.stat().st_size if self.partial.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=60) as response:
            complete = have and response.status_code == 416  # the partial file already holds all of it
            if not complete:
                response.raise_for_status()
                if response.status_code != 206:  # the server sent the whole file: start over
                    have = 0
                total = have + int(response.headers.get("content-length", 0)) or self.file.size
                with self.partial.open("ab" if have else "wb") as handle, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=self.file.name,
                    disable=not self.progress, leave=False,
                ) as bar:
                    for chunk in response.iter_content(DOWNLOAD_CHUNK_BYTES):
                        handle.write(chunk)
                        bar.update(len(chunk))
        if self.file.known_hash.startswith("gitblob:"):
            found = file_hash(self.partial, self.file.known_hash)
            if found != self.file.known_hash:
                self.partial.unlink()
                raise ValueError(f"its {found} is not the pinned {self.file.known_hash}")
        os.replace(self.partial, output_file)


def download(file: RemoteFile, destination: Path, name: str, root: str, progress: bool) -> None:
    """`file` at `destination`, checked; nothing at `destination` unless it is the pinned file."""
    import pooch
    import requests

    # pooch checks sha256 and md5 itself; a git blob id is the downloader's to check.
    pooch_hash = None if file.known_hash.startswith("gitblob:") else file.known_hash
    downloader = ResumingDownloader(file, destination.with_name(destination.name + PARTIAL_SUFFIX), progress)
    by_hand = (f"download {file.url} by hand (a browser, another machine) and run `{fetch_command(name, root)} "
               "--from FILE`, which checks its hash and puts it in place")
    try:
        fetcher = pooch.Pooch(path=destination.parent, base_url="", registry={destination.name: pooch_hash},
                              urls={destination.name: file.url}, retry_if_failed=RETRIES)
        fetcher.fetch(destination.name, downloader=downloader)
    except requests.RequestException as error:
        status = getattr(error.response, "status_code", None)
        reason = f"HTTP {status}" if status else type(error).__name__
        raise FetchError(f"{name}: could not download {file.url} ({reason}, after {RETRIES + 1} tries); rerun "
                         f"later (what arrived is kept and the next run resumes it), or {by_hand}.") from error
    except ValueError as error:
        reason = " ".join(str(error).split())[:300]
        raise FetchError(f"{name}: {file.url} is not the pinned file ({reason}); nothing was put at {destination}. "
                         f"The source may have changed; {by_hand}.") from error


# ---- laying out ----

def _staging_prefix(target: Path) -> str:
    return f".{target.name or 'unpack'}-"


def _remove_leftovers(target: Path) -> None:
    """What a killed fetch left beside `target`: its unpacking staging folders (`tempfile.mkdtemp`'s names
    with `_staging_prefix`) and pooch's empty temporary files (`tmp` + 8 characters)."""
    if not target.parent.is_dir():
        return
    staging = re.compile(re.escape(_staging_prefix(target)) + r"[a-z0-9_]{8}")
    for path in target.parent.iterdir():
        if path.is_dir() and not path.is_symlink() and staging.fullmatch(path.name):
            shutil.rmtree(path)
        elif (re.fullmatch(r"tmp[a-z0-9_]{8}", path.name) and path.is_file() and not path.is_symlink()
              and path.stat().st_size == 0):
            path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unpack(archive: Path, file: RemoteFile, target: Path) -> None:
    """The archive's contents (those under `file.archive_root`) in `target`, which appears whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tar:
                try:  # the data filter refuses members that would land outside `staging`, or links that lead out
                    tar.extractall(staging, filter="data")
                except tarfile.FilterError as error:
                    raise FetchError(f"{archive}: {error}; nothing was unpacked. Is it the pinned file?") from error
        else:
            shutil.unpack_archive(archive, staging)
        # Zips made on a Mac carry resource forks there ("._F01A01.wav"), which readers would take for data.
        shutil.rmtree(staging / "__MACOSX", ignore_errors=True)
        unpacked = staging / file.archive_root
        if not unpacked.is_dir():
            raise FetchError(f"{archive}: no folder {file.archive_root!r} in the archive; is it the pinned file?")
        if target.is_dir():  # an empty folder (a non-empty one was refused before)
            target.rmdir()
        unpacked.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would hide the data from the user's group
        unpacked.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _in_place(file: RemoteFile, target: Path, name: str) -> bool:
    """Whether `target` already holds `file` (a file with the pinned hash, or an unpacked archive's
    non-empty folder); stops when something else is there."""
    if not target.exists():
        return False
    if file.archive:
        if not target.is_dir():
            raise FetchError(f"{target} is a file, where {name}'s {file.name} unpacks into a folder; it may be yours, "
                             "so it is left alone: move it away and rerun.")
        if not any(target.iterdir()):
            return False
        return True
    if target.is_dir():
        raise FetchError(f"{target} is a folder, where {name}'s {file.name} goes; it may be yours, so it is left "
                         "alone: move it away and rerun.")
    if matches(target, file):
        return True
    raise FetchError(f"{target} exists but is not {name}'s pinned {file.name} ({file.known_hash}); it may be yours, "
                     "so it is left alone: move it away and rerun.")


def _match_given(given: list[Path], source: Source, name: str) -> dict[RemoteFile, Path]:
    """Which of the dataset's files each `--from` file is, by hash."""
    chosen: dict[RemoteFile, Path] = {}
    for path in given:
        if not path.is_file():
            raise FetchError(f"--from {path}: no such file; check the path.")
        hashes: dict[str, str] = {}
        for file in source.files:
            algorithm = file.known_hash.split(":", 1)[0]
            if file.size is not None and path.stat().st_size != file.size:
                continue
            if algorithm not in hashes:
                hashes[algorithm] = file_hash(path, file.known_hash)
            if hashes[algorithm] == file.known_hash.lower():
                chosen[file] = path
                break
        else:
            expected = ", ".join(f"{file.name} ({file.known_hash})" for file in source.files)
            raise FetchError(f"--from {path}: not one of {name}'s pinned files (expected one of: {expected}); "
                             "check that it is the file the URL names.")
    return chosen


def fetch(name: str, root: str | Path = DEFAULT_ROOT, given: list[Path] = (), *, sources: dict[str, Source] = SOURCES,
          progress: bool = True) -> Path:
    """Lay out dataset `name` under `root` (its files from `given`, or else downloaded); return its folder."""
    if name not in sources:
        raise FetchError(f"{name}: no such dataset; choose one of {', '.join(sources)}.")
    source = sources[name]
    root = Path(root)
    folder = root / source.folder
    for path, what in ((root, "--to"), (folder, f"{name}'s folder")):
        if path.exists() and not path.is_dir():
            raise FetchError(f"{what} {path} is a file; give --to a folder (it is created when missing), or move "
                             "the file away.")
    from_files = _match_given([Path(path) for path in given], source, name)
    created = [path for path in (root, folder, root / DOWNLOADS, root / DOWNLOADS / name) if not path.exists()]
    try:
        missing = _lay_out(source, folder, root, name, from_files, progress)
    finally:
        for path in reversed(created):  # what this fetch created and left empty (a failed or partial one)
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    if missing:
        placed = ", ".join(str(folder / file.place) for file in from_files) or "nothing"
        urls = " ".join(file.url for file in missing)
        names = " ".join(file.name for file in missing)
        raise FetchError(f"{name}: placed {placed}; still missing {', '.join(file.place for file in missing)}. "
                         f"Download {urls} and run `{fetch_command(name, root.as_posix())} --from {names}` (paths "
                         f"to where they are), or run `{fetch_command(name, root.as_posix())}` to download them.")
    return folder


def _lay_out(source: Source, folder: Path, root: Path, name: str, from_files: dict[RemoteFile, Path],
             progress: bool) -> list[RemoteFile]:
    """Put each of `source`'s files in place: from `from_files`, else downloaded, unless files were given
    (then the others are left to the user); returns the files still missing."""
    missing = []
    for file in source.files:
        target = folder / file.place
        _remove_leftovers(target)
        if _in_place(file, target, name):
            print(f"{target}: already there, left as it is" if file.archive else f"{target}: already in place "
                  "(hash checked)")
            continue
        local = from_files.get(file)
        if local is None and from_files:
            missing.append(file)
            continue
        if file.archive:
            archive = local
            if archive is None:
                archive = root / DOWNLOADS / name / file.name
                _remove_leftovers(archive)
                download(file, archive, name, root.as_posix(), progress)
            _unpack(archive, file, target)
            if local is None:
                archive.unlink()
        elif local is not None:
            with atomic_path(target) as temporary:
                shutil.copyfile(local, temporary)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            download(file, target, name, root.as_posix(), progress)
        print(f"{target}: {'copied from ' + str(local) if local else 'fetched'} ({file.known_hash.split(':')[0]} "
              "checked)")
    return missing


@dataclass
class FetchOptions:
    """Where the dataset goes, and the files fetched by hand."""

    to: str = field(default=DEFAULT_ROOT, metadata={
        "help": "Folder the datasets go under (the default is where the recipe configs look).",
        "metavar": "DIR"})
    # `from` is a Python keyword, so the field cannot have the flag's name; --from stays as an alias.
    from_files: list[str] = field(default_factory=list, metadata={
        "help": "Files fetched by hand (--from also takes them): each is checked against the pinned hashes and put "
                "in place.",
        "aliases": ["--from"], "metavar": "FILE"})


def main(argv: list[str] | None = None) -> Path:
    from hf_tasks.parsing import parse_command  # transformers' parser: imported for the command line only

    datasets = "\n".join(f"    {name:<12}{source.about}" for name, source in SOURCES.items())
    (name,), options = parse_command(FetchOptions, argv, words=("NAME",),
                                     description=f"{__doc__}\nThe datasets (NAME):\n\n{datasets}")
    folder = fetch(name, options.to, options.from_files, progress=sys.stderr.isatty())
    print(f"{name} is in {folder}")
    return folder


if __name__ == "__main__":
    with one_line_errors():
        main()
