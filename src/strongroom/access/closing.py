"""Closing a project: its key is destroyed, its tokens die, its sealed files go."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable

from sqlalchemy import update
from sqlalchemy.orm import Session

from strongroom.access.context import AccessContext
from strongroom.access.models import ApiToken, Project
from strongroom.access.states import ProjectStatus, advance
from strongroom.db import purge_deleted


def close_project(db: Session, project: Project, status: ProjectStatus, now: dt.datetime) -> None:
    """End or revoke a project within the caller's transaction: key destroyed, tokens dead."""
    action = "end" if status is ProjectStatus.ENDED else "revoke"
    project.status = advance(ProjectStatus(project.status), action, f"project {project.id}")
    project.key_sealed = None
    project.closed_at = now
    db.execute(update(ApiToken).where(ApiToken.project_id == project.id,
                                      ApiToken.revoked_at.is_(None)).values(revoked_at=now))


def destroy_project_files(ctx: AccessContext, project_ids: Iterable[str]) -> None:
    """After the keys' rows are gone: purge their old copies, remove the projects' files."""
    purge_deleted(ctx.engine)
    for project_id in project_ids:
        where = ctx.project_dir(project_id)
        if where.exists():
            shutil.rmtree(where)
