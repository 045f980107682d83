"""The Modal container imports only what its image installs.

The app ships the whole ``rag_ingest`` source, but its image installs ``IMAGE_PACKAGES`` alone:
an import that reaches the pipeline's other wings (settings, registry, S3) would fail in every
container at start. Modal cannot be reached here, so the container's site-packages is rebuilt
as a folder of links to exactly the distributions the image gets (its packages, what they
require, and the ``modal`` client Modal adds), and the app runs there with no other
site-packages: a missing dependency fails the way it would on Modal.
"""

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from modal_functions import embedder

REPO = Path(__file__).resolve().parent.parent

CONTAINER = """
import json, sys
from modal_functions.embedder import SMOKE_SENTENCES, EmbeddingModel, smoke_report
vectors, seconds = EmbeddingModel(batch_size=2).embed.local(list(SMOKE_SENTENCES))
lines, problems = smoke_report(vectors, seconds, seconds)
print(json.dumps({"problems": problems, "modules": sorted(sys.modules)}))
"""


def _closure(requirements: list[str]) -> set[str]:
    """The distributions pip installs for ``requirements``, read from this environment."""
    seen: set[str] = set()
    todo = [canonicalize_name(Requirement(r).name) for r in requirements]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = md.requires(name) or []
        except md.PackageNotFoundError:  # only on other platforms (markers) or optional
            continue
        for raw in needs:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def _site_packages(names: set[str], folder: Path) -> None:
    """Links to the files of the distributions ``names`` (their top-level entries)."""
    for name in names:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}:
            source = Path(str(dist.locate_file(top)))
            target = folder / top
            if source.exists() and not target.exists():
                target.symlink_to(source)


def test_the_app_runs_with_only_the_images_packages(tmp_path: Path) -> None:
    allowed = _closure([*embedder.IMAGE_PACKAGES, "modal"])
    assert "pydantic-settings" not in allowed and "sqlalchemy" not in allowed  # a real limit
    site = tmp_path / "site-packages"
    site.mkdir()
    _site_packages(allowed, site)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # What build_image bakes into the image's environment.
        embedder.SPEC_ENV: json.dumps(
            embedder.dataclasses.asdict(embedder.baked_spec(embedder.SPEC))
        ),
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", CONTAINER],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["problems"] == []
    pipeline = [m for m in result["modules"] if m.startswith("rag_ingest.")]
    assert "rag_ingest.core.text.encoder" in pipeline
    assert "rag_ingest.core.config" not in pipeline


def test_the_baked_spec_is_what_the_container_serves() -> None:
    spec = embedder.SPEC
    baked = embedder.baked_spec(spec)
    assert baked.path == ("" if spec.is_default else embedder.MODEL_MOUNT)
    os.environ[embedder.SPEC_ENV] = json.dumps(embedder.dataclasses.asdict(baked))
    try:
        served = embedder.deployed_spec()
    finally:
        del os.environ[embedder.SPEC_ENV]
    assert embedder.dataclasses.replace(served, path=spec.path) == spec
    assert Path(served.path).is_dir()
