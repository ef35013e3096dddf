"""The project as it was at a git revision, extracted without touching the working tree.

`plan --base REV` compares the working tree with REV's merge base with HEAD (what a pull
request's diff shows). Only the project directory's files are extracted (`git archive`),
into a temporary directory, so includes and `.sql` files resolve exactly as they did there.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path


class GitError(Exception):
    """git refused; the message carries git's own words."""


@dataclass(frozen=True)
class BaseRevision:
    rev: str  # as the user wrote it, e.g. "main" or "origin/main"
    commit: str  # the commit compared with (the merge base)
    merge_base: bool  # True when `commit` is REV's merge base with HEAD, not REV itself

    @property
    def label(self) -> str:
        short = self.commit[:10]
        return f"{self.rev} (merge base {short})" if self.merge_base else f"{self.rev} ({short})"


def _git(cwd: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError as e:
        raise GitError("git is not installed (plan --base needs it)") from e
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(message[-1] if message else f"git {' '.join(args)} failed")
    return done.stdout


def repo_root(path: Path) -> Path:
    try:
        return Path(_git(path, "rev-parse", "--show-toplevel").decode().strip())
    except GitError as e:
        raise GitError(f"{path} is not inside a git repository ({e}); plan --base compares git revisions") from e


def resolve_base(root: Path, rev: str) -> BaseRevision:
    """REV's merge base with HEAD; REV itself when they share no history."""
    try:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except GitError:
        raise GitError(
            f"unknown revision {rev!r} (in CI, fetch it first: `git fetch origin {rev}` or check out with fetch-depth: 0)"
        ) from None
    try:
        base = _git(root, "merge-base", commit, "HEAD").decode().strip()
    except GitError:
        return BaseRevision(rev, commit, False)
    return BaseRevision(rev, base, base != commit)


def export_project(project_dir: Path, commit: str, dest: Path) -> Path | None:
    """Write the project directory's files at `commit` under `dest`; return where the
    project lands (None when the directory did not exist at that commit)."""
    root = repo_root(project_dir).resolve()
    rel = project_dir.resolve().relative_to(root).as_posix()
    args = ["archive", "--format=tar", commit]
    if rel != ".":
        args += ["--", rel]
    try:
        data = _git(root, *args)
    except GitError as e:
        if "did not match" in str(e):
            return None
        raise
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        if hasattr(tarfile, "data_filter"):
            # refuses absolute paths, links out of `dest` and device files
            tar.extractall(dest, filter="data")
        else:  # Python < 3.10.12: keep regular files and directories only
            tar.extractall(
                dest,
                members=[
                    m
                    for m in tar.getmembers()
                    if (m.isfile() or m.isdir()) and not m.name.startswith("/") and ".." not in Path(m.name).parts
                ],
            )
    return dest / rel if rel != "." else dest
