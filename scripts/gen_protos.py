"""Generate the Python code of the API contract in protos/, reproducibly.

    python scripts/gen_protos.py OUT_DIR           regenerate OUT_DIR (e.g. gen/python)
    python scripts/gen_protos.py --check OUT_DIR   exit 1 when OUT_DIR is stale

Generation runs grpc_tools' bundled protoc with the messages (`_pb2.py`), gRPC stubs
(`_pb2_grpc.py`) and mypy-protobuf's `.pyi` stubs for both, always from scratch into a
temporary directory: OUT_DIR is then swapped for it whole, so files of deleted protos never
linger. Every generated directory gets an empty `__init__.py`, making `wallet.auth.v1` and the
rest regular packages.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
# Bytecode caches appear beside the generated code as soon as it is imported; they are not
# part of what generation produces.
IGNORED_NAMES = frozenset({"__pycache__"})


class GenerationError(Exception):
    """protoc or one of its plugins failed; the message carries their output."""


def _grpc_tools_include() -> Path:
    """The well-known types (google/protobuf/*.proto) that ship with grpc_tools."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise GenerationError("grpc_tools is not installed: pip install grpcio-tools")
    return Path(next(iter(spec.submodule_search_locations))) / "_proto"


def _plugin(name: str) -> Path:
    """A protoc plugin installed next to this interpreter (the virtualenv's bin/)."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return beside_python
    found = shutil.which(name)
    if found is None:
        raise GenerationError(f"{name} not found: pip install mypy-protobuf")
    return Path(found)


def _proto_files() -> list[str]:
    files = sorted(path.relative_to(PROTO_ROOT).as_posix() for path in PROTO_ROOT.rglob("*.proto"))
    if not files:
        raise GenerationError(f"no .proto files under {PROTO_ROOT}")
    return files


def generate(out_dir: Path) -> None:
    """Write the generated tree for every proto file into the empty directory `out_dir`."""
    out_dir = out_dir.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        descriptor_set = Path(scratch) / "descriptors.binpb"
        _run_protoc(out_dir, descriptor_set)
        _remove_empty_grpc_modules(out_dir, descriptor_set)
    _add_package_markers(out_dir)


def _run_protoc(out_dir: Path, descriptor_set: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={_grpc_tools_include()}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out=quiet:{out_dir}",
        f"--mypy_grpc_out=quiet:{out_dir}",
        f"--descriptor_set_out={descriptor_set}",
        # Names relative to protos/ keep the embedded descriptors, and so the output,
        # independent of where the repository is checked out.
        *_proto_files(),
    ]
    result = subprocess.run(  # noqa: S603 - argv of local paths, no shell
        command, cwd=PROTO_ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise GenerationError(f"protoc failed:\n{result.stderr.strip()}")


def _remove_empty_grpc_modules(out_dir: Path, descriptor_set: Path) -> None:
    """The gRPC plugins write a module even for a file without services; drop those."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes()).file
    for proto in files:
        if not proto.service:
            stem = proto.name.removesuffix(".proto")
            for suffix in ("_pb2_grpc.py", "_pb2_grpc.pyi"):
                (out_dir / f"{stem}{suffix}").unlink()


def _add_package_markers(out_dir: Path) -> None:
    """Empty `__init__.py` in every package directory (out_dir itself is the import root)."""
    for directory in [path for path in out_dir.rglob("*") if path.is_dir()]:
        (directory / "__init__.py").touch()


def _relative_files(root: Path) -> set[str]:
    files: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [name for name in dirnames if name not in IGNORED_NAMES]
        for filename in filenames:
            files.add((Path(dirpath) / filename).relative_to(root).as_posix())
    return files


def stale_files(expected: Path, actual: Path) -> list[str]:
    """Every file that differs, is missing from `actual`, or should not be in it."""
    expected_files = _relative_files(expected)
    actual_files = _relative_files(actual) if actual.is_dir() else set()
    report = [f"missing: {name}" for name in sorted(expected_files - actual_files)]
    report += [f"unexpected: {name}" for name in sorted(actual_files - expected_files)]
    report += [
        f"differs: {name}"
        for name in sorted(expected_files & actual_files)
        if not filecmp.cmp(expected / name, actual / name, shallow=False)
    ]
    return report


def regenerate(out_dir: Path) -> None:
    """Replace `out_dir` with freshly generated code, swapping only once generation worked."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-new-", dir=out_dir.parent))
    try:
        generate(staging)
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the tree from other users
        retired = out_dir.with_name(f".{out_dir.name}-old")
        shutil.rmtree(retired, ignore_errors=True)
        if out_dir.exists():
            out_dir.rename(retired)
        staging.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check(out_dir: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        expected = Path(scratch)
        generate(expected)
        return stale_files(expected, out_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate Python code from protos/.")
    parser.add_argument("out_dir", type=Path, help="where the generated tree lives (gen/python)")
    parser.add_argument(
        "--check", action="store_true", help="only report whether out_dir is up to date"
    )
    args = parser.parse_args(argv)
    try:
        if not args.check:
            regenerate(args.out_dir)
            return 0
        stale = check(args.out_dir)
    except GenerationError as error:
        print(f"gen_protos: {error}", file=sys.stderr)
        return 2
    if stale:
        listing = "\n  ".join(stale)
        print(
            f"gen_protos: {args.out_dir} is stale; regenerate it with "
            f"`python scripts/gen_protos.py {args.out_dir}` (make proto):\n  {listing}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
