"""DesktopImage: the desktop container image, built from `image/` or a pinned prebuilt reference."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Optional

from cdktf import AssetType, DataResource, LocalExecProvisioner, TerraformAsset
from cdktf_cdktf_provider_google.artifact_registry_repository import ArtifactRegistryRepository
from constructs import Construct

from microvm import contract, validate
from microvm.errors import ConfigError
from microvm.project_apis import enable_apis

# name[:tag][@sha256:digest], the registry host optionally with a port.
_REFERENCE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)

# The command Terraform runs at deploy time. Skips the build when the tag already exists (tags are
# content hashes and the repository's tags are immutable), so a re-deploy costs seconds.
_BUILD_COMMAND = """set -euo pipefail
if gcloud artifacts docker images describe "$IMAGE" --project "$PROJECT" >/dev/null 2>&1; then
  echo "desktop image $IMAGE exists; not rebuilding"; exit 0
fi
config=$(mktemp --suffix=.json); trap 'rm -f "$config"' EXIT
printf '%s' "$BUILD_CONFIG" > "$config"
gcloud builds submit "$CONTEXT" --project "$PROJECT" --region "$REGION" --config "$config"
"""


class DesktopImage(Construct):
    """The container image the desktops run. Create it with `from_source` or `from_registry`.

    Attributes: `image_uri` (what a Deployment pulls), `repository` (the Artifact Registry repository,
    or None for a prebuilt image), `source_hash` (the build context's hash, or None).
    """

    def __init__(self, scope: Construct, id: str, *, image_uri: str) -> None:
        # Use the factory methods: they validate their inputs. This constructor only records the result.
        super().__init__(scope, id)
        self._image_uri = image_uri
        self._repository: Optional[ArtifactRegistryRepository] = None
        self._source_hash: Optional[str] = None

    @classmethod
    def from_source(
        cls,
        scope: Construct,
        id: str,
        *,
        project: str,
        region: str,
        context_dir: str = "image",
        repository_id: str = "microvm",
        image_name: str = "desktop",
    ) -> "DesktopImage":
        """Build `context_dir` with Cloud Build at deploy time and push it to a new Artifact Registry repository.

        The tag is a hash of the build context and the image contract's build arguments: any change in
        the folder changes the tag, and so rolls the desktops; an unchanged folder deploys nothing.
        The deploying machine needs `gcloud` (authenticated) on its PATH.
        """
        validate.project_id("DesktopImage.project", project)
        validate.region("DesktopImage.region", region)
        validate.gcp_name("DesktopImage.repository_id", repository_id)
        validate.k8s_name("DesktopImage.image_name", image_name, max_length=128)
        context = check_context_dir(context_dir)

        build_args = contract.build_args()
        source_hash = _hash_context(context, build_args)
        image_uri = f"{region}-docker.pkg.dev/{project}/{repository_id}/{image_name}:src-{source_hash[:20]}"
        image = cls(scope, id, image_uri=image_uri)
        image._source_hash = source_hash

        apis = enable_apis(image, project, ("artifactregistry.googleapis.com", "cloudbuild.googleapis.com"))
        image._repository = ArtifactRegistryRepository(
            image, "repository",
            project=project, location=region, repository_id=repository_id, format="DOCKER",
            description="Micro-VM desktop images, tagged by the hash of their build context.",
            docker_config={"immutable_tags": True},
            labels={"managed-by": "microvm"},
            depends_on=apis,
        )
        # Copied into the synthesized output, so the build runs from a path relative to the stack.
        asset = TerraformAsset(image, "context", path=str(context), type=AssetType.DIRECTORY)
        build_config = {
            "steps": [{
                "name": "gcr.io/cloud-builders/docker",
                "args": ["build", *[a for k, v in build_args.items() for a in ("--build-arg", f"{k}={v}")],
                         "-t", image_uri, "."],
            }],
            "images": [image_uri],
        }
        DataResource(
            image, "build",
            triggers_replace={"image": image_uri},
            depends_on=[image._repository],
            provisioners=[LocalExecProvisioner(
                type="local-exec",
                command=_BUILD_COMMAND,
                interpreter=["/bin/bash", "-c"],
                environment={
                    "IMAGE": image_uri, "PROJECT": project, "REGION": region, "CONTEXT": asset.path,
                    "BUILD_CONFIG": json.dumps(build_config, sort_keys=True),
                },
            )],
        )
        return image

    @classmethod
    def from_registry(cls, scope: Construct, id: str, *, reference: str) -> "DesktopImage":
        """A prebuilt image, pinned by digest (best) or an explicit tag other than `latest`.

        The image must honour the contract in `microvm.contract` (port, health endpoints, password file).
        """
        check_reference("DesktopImage.reference", reference)
        return cls(scope, id, image_uri=reference)

    @property
    def image_uri(self) -> str:
        return self._image_uri

    @property
    def repository(self) -> Optional[ArtifactRegistryRepository]:
        return self._repository

    @property
    def source_hash(self) -> Optional[str]:
        return self._source_hash


def check_reference(field: str, reference: object) -> str:
    """Refuse image references that do not pin an image: untagged, or tagged `latest` without a digest."""
    validate.string(field, reference, example="europe-docker.pkg.dev/p/r/desktop@sha256:...")
    if validate.is_token(reference):
        return reference
    match = _REFERENCE.match(reference)
    if not match:
        raise ConfigError(field, reference, "is not a valid image reference", "write it as registry/path/name:tag or registry/path/name@sha256:<digest>")
    if not match["tag"] and not match["digest"]:
        raise ConfigError(field, reference, "has no tag or digest, so every pull may get a different image", f"pin it, e.g. {reference}@sha256:<digest> or {reference}:<version>")
    if match["tag"] == "latest" and not match["digest"]:
        raise ConfigError(field, reference, "'latest' moves, so every pull may get a different image", "pin a digest (@sha256:...) or a version tag")
    return reference


def check_context_dir(context_dir: object, field: str = "DesktopImage.context_dir") -> Path:
    """The build context folder, resolved; refused unless it exists and holds a Dockerfile."""
    validate.string(field, context_dir, example="image")
    path = Path(context_dir).expanduser()
    if not path.is_dir():
        raise ConfigError(field, context_dir, f"is not a folder (looked in {path.resolve()})", "pass the folder that holds the Dockerfile, such as 'image'")
    if not (path / "Dockerfile").is_file():
        raise ConfigError(field, context_dir, "has no Dockerfile", "pass the folder that holds the Dockerfile, such as 'image'")
    return path.resolve()


def _hash_context(context: Path, build_args: dict[str, str]) -> str:
    """sha256 over every file's relative path, executable bit and bytes, and the build arguments."""
    digest = hashlib.sha256()
    digest.update(json.dumps(build_args, sort_keys=True).encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(context).as_posix()
        digest.update(b"\0" + relative.encode() + b"\0")
        if path.is_symlink():
            digest.update(b"link:" + os.readlink(path).encode())
        else:
            digest.update(b"x" if os.access(path, os.X_OK) else b"-")
            digest.update(path.read_bytes())
    return digest.hexdigest()
