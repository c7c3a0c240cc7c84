"""Request bodies of the write endpoints (pydantic models; a wrong type is a 422, a value
no database can store is a 400: see :mod:`em_dist.server.storable`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from em_dist.limits import MAX_FOLDER_PATH_CHARS, MAX_OBJECT_NAME_CHARS, MAX_RANK, MAX_TIMESTAMP_CHARS, MAX_WORLD_SIZE
from em_dist.server.storable import StorableModel
from em_dist.store.layout import check_name


def _object_name(value: str) -> str:
    """The SDK's rule for run and artifact names (:func:`em_dist.store.layout.check_name`): no path
    separators, not ``.`` or ``..``, not blank. A name is a folder name where the run is read back."""
    return check_name(value)


def _alternative_name(value: str) -> str:
    return check_name(value, "alternative_name") if value else value


ObjectName = Annotated[str, Field(min_length=1, max_length=MAX_OBJECT_NAME_CHARS), AfterValidator(_object_name)]
AlternativeName = Annotated[str, Field(max_length=MAX_OBJECT_NAME_CHARS), AfterValidator(_alternative_name)]

Rank = Annotated[int, Field(ge=0, le=MAX_RANK)]

ConflictStrategy = Literal["skip", "error", "new", "replace"]


class FolderSpec(StorableModel):
    """Where an upload goes: ``folder_id`` wins over ``folder`` (a path); neither means ``default``."""

    folder: str | None = Field(default=None, max_length=MAX_FOLDER_PATH_CHARS + 201)  # "/<user>/" + a path
    folder_id: str | None = Field(default=None, max_length=36)
    make_folder: bool = False


class RunMeta(BaseModel):
    """The fields of ``run.json`` the server keeps (unknown keys go to ``extra``)."""

    model_config = ConfigDict(extra="allow")

    name: ObjectName
    alternative_name: AlternativeName = ""
    status: str = Field(default="Running", max_length=32)
    status_reason: str | None = None
    labels: list[str] = Field(default_factory=list)
    description: str = ""
    start_timestamp: str | None = Field(default=None, max_length=MAX_TIMESTAMP_CHARS)
    end_timestamp: str | None = Field(default=None, max_length=MAX_TIMESTAMP_CHARS)
    world: dict[str, Any] = Field(default_factory=dict)
    lost_ranks: list[Rank] = Field(default_factory=list, max_length=MAX_WORLD_SIZE)


class ArtifactLink(BaseModel):
    """A run's use of an artifact (from ``artifacts.json``)."""

    id: str = Field(min_length=1, max_length=36)
    name: str = Field(default="", max_length=MAX_OBJECT_NAME_CHARS)
    role: Literal["input", "output"]
    rank: Rank | None = None


class RunUpload(FolderSpec):
    """``PUT /runs/{id}``: create or update a run's metadata."""

    conflict_strategy: ConflictStrategy = "new"
    run: RunMeta
    hparams: dict[str, Any] = Field(default_factory=dict)
    hparams_ranks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    platform: dict[str, Any] = Field(default_factory=dict)
    git: dict[str, Any] | None = None
    artifacts: list[ArtifactLink] = Field(default_factory=list)
    ranks: list[Rank] = Field(default_factory=list, max_length=MAX_WORLD_SIZE)
    delivery: dict[str, dict[str, Any]] = Field(default_factory=dict, max_length=MAX_WORLD_SIZE)
    """run.json's ``delivery``: per rank, how many of its numbered records the folder holds."""
    placeholder: bool = False
    """Made from a rank's journal alone (another host): create the run if it is missing, else change nothing."""


class FileEntry(BaseModel):
    """One file of an artifact: object path, size and content hash."""

    path: str = Field(min_length=1, max_length=1000)
    size: int = Field(ge=0, le=2**63 - 1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ArtifactMeta(BaseModel):
    """The fields of ``artifact.json`` the server keeps."""

    name: ObjectName
    alternative_name: AlternativeName = ""
    labels: list[str] = Field(default_factory=list)
    description: str = ""
    created_timestamp: str | None = Field(default=None, max_length=MAX_TIMESTAMP_CHARS)
    references: list[dict[str, Any]] = Field(default_factory=list)


class ArtifactUpload(FolderSpec):
    """``PUT /artifacts/{id}``: an artifact whose blobs are all on the server already."""

    artifact: ArtifactMeta
    files: list[FileEntry] = Field(default_factory=list)


class BlobQuery(StorableModel):
    """``POST /blobs/missing``: which of these hashes does the server lack?"""

    sha256: list[str] = Field(max_length=100_000)


class FolderCreate(StorableModel):
    """``POST /folders``: create a folder path (missing levels too)."""

    path: str = Field(min_length=1, max_length=MAX_FOLDER_PATH_CHARS)


class ShareCreate(StorableModel):
    """``POST /folders/{id}/shares``: give another user view or edit access."""

    user: str = Field(min_length=1, max_length=200)
    permission: Literal["view", "edit"]


class RunEdit(BaseModel):
    """``PATCH /runs/{id}``: the run metadata a user with edit permission changes where they
    look at it (the console's run page). Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: ObjectName | None = None
    labels: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=100_000)
    archived: bool | None = None
