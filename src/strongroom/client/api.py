"""A small synchronous client for Strongroom's HTTP API, for researchers and administrators.

Sign in with a password and the authenticator's code (the client keeps the session cookie and
sends the CSRF token itself), or use a project-scoped API token; every refusal is raised as
:class:`StrongroomError` with the server's reasons::

    from strongroom.client import Client, StrongroomError

    with Client("https://strongroom.example.org", verify="ca.pem") as admin:
        admin.login("ada@example.org", "correct horse battery", "123456")
        uni = admin.institutions.create("Uni A", "GB", "UK GDPR", ["192.0.2.0/24"])
        new = admin.people.create(uni["id"], "rex@uni-a.ac.uk", "Rex", ["researcher"])
    with Client("https://strongroom.example.org", token="srt_…") as researcher:
        try:
            fields = researcher.projects.schema("prj_0123abcd")
        except StrongroomError as exc:
            print(exc.status, exc.reasons)

Answers are the API's JSON as plain dicts and lists (the OpenAPI spec at ``/openapi.json``
documents their fields). Network failures (refused connection, TLS errors) are raised by
``httpx`` as :class:`httpx.TransportError`; only answers from the server become
:class:`StrongroomError`.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

import strongroom

Obj = dict[str, Any]
Objs = list[Obj]
Day = dt.date | str
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
POLL_READ = 30.0  # seconds a poll of a running analysis is awaited, at least


class StrongroomError(Exception):
    """A non-2xx answer: ``status`` (HTTP), ``error`` (its kind) and the server's ``reasons``.

    ``retry_after`` holds the seconds to wait when the server says so (429 answers).
    """

    def __init__(self, status: int, error: str, reasons: list[str],
                 retry_after: int | None = None):
        self.status = status
        self.error = error
        self.reasons = reasons
        self.retry_after = retry_after
        super().__init__("; ".join(reasons) or f"HTTP {status} ({error})")

    def __str__(self) -> str:
        return "; ".join(self.reasons) or f"HTTP {self.status} ({self.error})"

    @classmethod
    def from_response(cls, response: httpx.Response) -> StrongroomError:
        error, reasons = f"http-{response.status_code}", []
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = str(body.get("error") or error)
            found = body.get("reasons")
            if isinstance(found, list):
                reasons = [str(r) for r in found]
        if not reasons:
            text = response.text.strip()[:500]
            reasons = [text or response.reason_phrase or f"HTTP {response.status_code}"]
        retry = response.headers.get("retry-after", "")
        return cls(response.status_code, error, reasons,
                   int(retry) if retry.isdigit() else None)


def _segment(value: str) -> str:
    """One path segment: an id can never reach another route (``/``, ``..`` are escaped)."""
    return quote(str(value), safe="")


def _day(value: Day) -> str:
    return value.isoformat() if isinstance(value, dt.date) else value


def _ssl_verify(verify: bool | str | os.PathLike[str] | ssl.SSLContext) -> bool | ssl.SSLContext:
    """``True`` (system CAs), ``False`` (no check: tests only), a CA file, or a context."""
    if isinstance(verify, bool | ssl.SSLContext):
        return verify
    return ssl.create_default_context(cafile=os.fspath(verify))


class Client:
    """One person's connection: a web session (:meth:`login`) or an API token (``token=``).

    ``verify`` is ``True`` (the system's CAs), the path of a CA or self-signed certificate
    file, an :class:`ssl.SSLContext`, or ``False`` (no verification: never in production).
    ``local_address`` binds the source address on machines with several networks (API tokens
    and data work are allowed only from the institution's registered networks).
    """

    def __init__(self, base_url: str, *, token: str | None = None,
                 verify: bool | str | os.PathLike[str] | ssl.SSLContext = True,
                 timeout: float = 30, local_address: str | None = None):
        headers = {"User-Agent": f"strongroom-client/{strongroom.__version__}",
                   "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        checked = _ssl_verify(verify)
        transport = (httpx.HTTPTransport(verify=checked, local_address=local_address)
                     if local_address is not None else None)
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers,
                                  verify=checked, timeout=timeout, transport=transport,
                                  follow_redirects=False)
        self._csrf: str | None = None
        self.institutions = Institutions(self)
        self.people = People(self)
        self.projects = Projects(self)
        self.tokens = Tokens(self)
        self.pauses = Pauses(self)
        self.audit = Audit(self)
        self.enclave = Enclave(self)
        self.outputs = Outputs(self)
        self.watch = Watch(self)
        self.privacy = Privacy(self)
        self.jobs = Jobs(self)
        self.transfers = Transfers(self)

    # -- plumbing ------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None, computes: bool = False,
                polls: bool = False) -> Any:
        """Send one request; return its JSON (``None`` when empty) or raise StrongroomError.
        ``computes``: the server works on the data before it answers (an analysis, a
        definition: seconds to minutes, by the request and the cohort's size), so the answer
        is awaited however long it takes; connecting and sending keep the client's timeout.
        ``polls``: a quick read of something running, awaited at least POLL_READ seconds
        (never forever: a connection a laptop's sleep left hanging is given up, and the
        poll sent again)."""
        method = method.upper()
        headers = {}
        if self._csrf is not None and method not in SAFE_METHODS:
            headers[CSRF_HEADER] = self._csrf
        timeout = self._http.timeout
        if computes:
            timeout = httpx.Timeout(timeout.connect, read=None, write=timeout.write,
                                    pool=timeout.pool)
        elif polls:
            timeout = httpx.Timeout(timeout.connect, read=max(timeout.read or 0, POLL_READ),
                                    write=timeout.write, pool=timeout.pool)
        response = self._http.request(method, path, json=json, params=params, headers=headers,
                                      timeout=timeout)
        if not response.is_success:
            raise StrongroomError.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise StrongroomError(response.status_code, "bad-answer",
                                  [f"{method} {path} answered something other than JSON"]
                                  ) from None

    def _object(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None, computes: bool = False,
                polls: bool = False) -> Obj:
        found = self.request(method, path, json=json, params=params, computes=computes,
                             polls=polls)
        if not isinstance(found, dict):
            raise StrongroomError(200, "bad-answer", [f"{method} {path} did not answer an "
                                                      f"object"])
        return found

    def _objects(self, path: str, *, params: Mapping[str, Any] | None = None) -> Objs:
        found = self.request("GET", path, params=params)
        if not isinstance(found, list):
            raise StrongroomError(200, "bad-answer", [f"GET {path} did not answer a list"])
        return found

    def content(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        """GET bytes that are not JSON (a download); refusals still raise StrongroomError."""
        response = self._http.request("GET", path, params=params, headers={"Accept": "*/*"})
        if not response.is_success:
            raise StrongroomError.from_response(response)
        return response.content

    def post_content(self, path: str, json: Any = None) -> bytes:
        """POST for bytes that are not JSON (an extract); refusals raise StrongroomError."""
        headers = {"Accept": "*/*"}
        if self._csrf is not None:
            headers[CSRF_HEADER] = self._csrf
        response = self._http.request("POST", path, json=json, headers=headers)
        if not response.is_success:
            raise StrongroomError.from_response(response)
        return response.content

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # -- authentication ------------------------------------------------------------------

    def login(self, email: str, password: str, code: str) -> Obj:
        """Sign in (password + authenticator code); the session is kept for later calls."""
        session = self._object("POST", "/auth/login",
                               json={"email": email, "password": password, "code": code})
        self._csrf = str(session["csrf_token"])
        return session

    def logout(self) -> None:
        """End the web session (API tokens are revoked with ``tokens.revoke`` instead)."""
        try:
            self.request("POST", "/auth/logout")
        finally:
            self._csrf = None
            self._http.cookies.clear()

    def change_password(self, current: str, new: str) -> None:
        """Change your password (at least 12 characters); your other sessions end."""
        self.request("POST", "/auth/password", json={"current": current, "new": new})

    def me(self) -> Obj:
        """Who this client is signed in as, by which means, and (tokens) for what."""
        return self._object("GET", "/auth/me")

    def roles(self) -> Objs:
        return self._objects("/roles")

    def health(self) -> Obj:
        """Liveness only; needs no sign-in."""
        return self._object("GET", "/health")


class _Section:
    def __init__(self, client: Client):
        self._c = client


class Institutions(_Section):
    def list(self) -> Objs:
        return self._c._objects("/institutions")

    def create(self, name: str, country: str, jurisdiction: str,
               networks: Iterable[str] = ()) -> Obj:
        return self._c._object("POST", "/institutions", json={
            "name": name, "country": country, "jurisdiction": jurisdiction,
            "networks": list(networks)})

    def get(self, institution_id: str) -> Obj:
        return self._c._object("GET", f"/institutions/{_segment(institution_id)}")

    def update(self, institution_id: str, *, name: str | None = None,
               jurisdiction: str | None = None, networks: Iterable[str] | None = None) -> Obj:
        """Change only what is given (``networks`` replaces the registered ranges)."""
        body: Obj = {}
        if name is not None:
            body["name"] = name
        if jurisdiction is not None:
            body["jurisdiction"] = jurisdiction
        if networks is not None:
            body["networks"] = list(networks)
        return self._c._object("PATCH", f"/institutions/{_segment(institution_id)}",
                               json=body)

    def revoke(self, institution_id: str, reason: str) -> Obj:
        """Cut the institution off: its people, sessions, tokens and projects, at once."""
        return self._c._object("POST", f"/institutions/{_segment(institution_id)}/revoke",
                               json={"reason": reason})

    def reinstate(self, institution_id: str) -> Obj:
        return self._c._object("POST", f"/institutions/{_segment(institution_id)}/reinstate")


class People(_Section):
    def list(self, institution_id: str | None = None) -> Objs:
        params = {"institution_id": institution_id} if institution_id is not None else None
        return self._c._objects("/people", params=params)

    def create(self, institution_id: str, email: str, name: str, roles: Iterable[str],
               password: str | None = None) -> Obj:
        """Register a person; the answer holds their TOTP secret (and password) shown once."""
        body: Obj = {"institution_id": institution_id, "email": email, "name": name,
                     "roles": list(roles)}
        if password is not None:
            body["password"] = password
        return self._c._object("POST", "/people", json=body)

    def get(self, person_id: str) -> Obj:
        return self._c._object("GET", f"/people/{_segment(person_id)}")

    def grant_role(self, person_id: str, role: str) -> Obj:
        return self._c._object("POST", f"/people/{_segment(person_id)}/roles",
                               json={"role": role})

    def revoke_role(self, person_id: str, role: str) -> Obj:
        return self._c._object("DELETE",
                               f"/people/{_segment(person_id)}/roles/{_segment(role)}")

    def record_training(self, person_id: str, course: str, completed_on: Day,
                        expires_on: Day) -> Obj:
        return self._c._object("POST", f"/people/{_segment(person_id)}/training", json={
            "course": course, "completed_on": _day(completed_on),
            "expires_on": _day(expires_on)})

    def set_vetting(self, person_id: str, status: str) -> Obj:
        """``approved``, ``rejected`` or ``lapsed``."""
        return self._c._object("POST", f"/people/{_segment(person_id)}/vetting",
                               json={"status": status})

    def unlock(self, person_id: str) -> Obj:
        return self._c._object("POST", f"/people/{_segment(person_id)}/unlock")

    def set_active(self, person_id: str, active: bool) -> Obj:
        return self._c._object("POST", f"/people/{_segment(person_id)}/active",
                               json={"active": active})


class Projects(_Section):
    def list(self) -> Objs:
        return self._c._objects("/projects")

    def create(self, title: str, purpose: str, lead_id: str, starts_on: Day, expires_on: Day,
               fields: Iterable[int] = (), members: Iterable[str] = ()) -> Obj:
        return self._c._object("POST", "/projects", json={
            "title": title, "purpose": purpose, "lead_id": lead_id,
            "starts_on": _day(starts_on), "expires_on": _day(expires_on),
            "fields": list(fields), "members": list(members)})

    def get(self, project_id: str) -> Obj:
        return self._c._object("GET", f"/projects/{_segment(project_id)}")

    def add_member(self, project_id: str, person_id: str) -> Obj:
        return self._c._object("POST", f"/projects/{_segment(project_id)}/members",
                               json={"person_id": person_id})

    def remove_member(self, project_id: str, person_id: str) -> Obj:
        return self._c._object(
            "DELETE", f"/projects/{_segment(project_id)}/members/{_segment(person_id)}")

    def set_fields(self, project_id: str, fields: Iterable[int]) -> Obj:
        """Replace the project's field grants with ``fields``."""
        return self._c._object("PUT", f"/projects/{_segment(project_id)}/fields",
                               json={"fields": list(fields)})

    def request_export(self, project_id: str, justification: str) -> Obj:
        return self._c._object("POST", f"/projects/{_segment(project_id)}/export/request",
                               json={"justification": justification})

    def decide_export(self, project_id: str, approve: bool) -> Obj:
        return self._c._object("POST", f"/projects/{_segment(project_id)}/export/decision",
                               json={"approve": approve})

    def close(self, project_id: str, reason: str, *, revoke: bool = False) -> Obj:
        """End (or, ``revoke=True``, revoke for cause) the project; its key is destroyed."""
        return self._c._object("POST", f"/projects/{_segment(project_id)}/close",
                               json={"revoke": revoke, "reason": reason})

    def schema(self, project_id: str) -> Objs:
        """The fields the project may analyse (a data access: every condition applies), with
        each field's coding (a small one's codes in full)."""
        return self._c._objects(f"/projects/{_segment(project_id)}/schema")

    def coding(self, project_id: str, coding_id: int, *, search: str | None = None,
               offset: int = 0, limit: int = 100) -> Obj:
        """The codes and meanings of a coding a granted field uses (``search``: those whose
        code or meaning holds it)."""
        params = {"offset": offset, "limit": limit, **({"search": search} if search else {})}
        return self._c._object("GET", f"/projects/{_segment(project_id)}/codings/"
                                      f"{int(coding_id)}", params=params)


class Tokens(_Section):
    def issue(self, project_id: str, actions: Iterable[str] = (), days: int = 30,
              label: str = "", preset: str | None = None) -> Obj:
        """A project-scoped API token for a ``preset``'s actions (``study``, ``jobs``,
        ``read``, ``export``) and/or those named; its ``secret`` is in the answer, shown
        once. Only a signed-in person issues tokens (never a token)."""
        body: Obj = {"project_id": project_id, "actions": list(actions), "days": days,
                     "label": label}
        if preset is not None:
            body["preset"] = preset
        return self._c._object("POST", "/auth/tokens", json=body)

    def list(self) -> Objs:
        return self._c._objects("/auth/tokens")

    def revoke(self, token_id: str) -> Obj:
        return self._c._object("DELETE", f"/auth/tokens/{_segment(token_id)}")


class Pauses(_Section):
    def list(self, include_lifted: bool = False) -> Objs:
        return self._c._objects("/pauses",
                                params={"include_lifted": "true" if include_lifted else "false"})

    def set(self, level: str, reason: str, target_id: str | None = None) -> Obj:
        """Pause the ``platform`` (no target), an ``institution``, ``project`` or ``person``."""
        return self._c._object("POST", "/pauses", json={
            "level": level, "target_id": target_id, "reason": reason})

    def lift(self, pause_id: str) -> Obj:
        """Lift; platform and institution pauses need a second admin to call this too."""
        return self._c._object("POST", f"/pauses/{_segment(pause_id)}/lift")


class Audit(_Section):
    def entries(self, start: int = 0, limit: int = 100) -> Objs:
        return self._c._objects("/audit/entries", params={"start": start, "limit": limit})

    def verify(self) -> Obj:
        """Check the whole log against its signed checkpoints and the witness file."""
        return self._c._object("POST", "/audit/verify")

    def checkpoint(self) -> Obj:
        """A freshly signed checkpoint, to keep outside Strongroom."""
        return self._c._object("POST", "/audit/checkpoint")

    def inclusion_proof(self, seq: int, tree_size: int) -> Obj:
        return self._c._object("GET", "/audit/proofs/inclusion",
                               params={"seq": seq, "tree_size": tree_size})

    def consistency_proof(self, old_size: int, new_size: int) -> Obj:
        return self._c._object("GET", "/audit/proofs/consistency",
                               params={"old_size": old_size, "new_size": new_size})


class Enclave(_Section):
    """Dataset definitions and analyses inside the enclave (no participant rows come back)."""

    def define(self, project_id: str, name: str, sql: str) -> Obj:
        """Build a participant-level table inside the enclave; returns its schema only."""
        return self._c._object("POST", f"/projects/{_segment(project_id)}/definitions",
                               json={"name": name, "sql": sql}, computes=True)

    def definitions(self, project_id: str) -> Objs:
        return self._c._objects(f"/projects/{_segment(project_id)}/definitions")

    def drop(self, project_id: str, name: str) -> None:
        self._c.request("DELETE",
                        f"/projects/{_segment(project_id)}/definitions/{_segment(name)}")

    def dummy(self, project_id: str) -> bytes:
        """A zip of synthetic tables with exactly the project's schema."""
        return self._c.content(f"/projects/{_segment(project_id)}/dummy")

    def analyse(self, project_id: str, analysis: Mapping[str, Any],
                format: str = "json", name: str | None = None, *, wait: bool = True,
                progress: Callable[[Obj], None] | None = None, every: float = 2.0) -> Obj:
        """Run an analysis; the answer is the checked output's verdict and reasons. ``name``:
        the output's file name (by default one made from the request).

        The analysis is submitted (answered at once with its run) and polled until it is
        answered, so no connection is held open while the server computes (a GWAS at
        500,000 takes minutes; a proxy's timeout or a laptop's sleep cannot lose it):
        ``progress`` is told each poll's run (``status``, ``step``, ``progress``: the elapsed
        share of its schedule's step, from the time alone), at most every ``every`` seconds.
        A refusal raises :class:`StrongroomError` with the status and reasons the
        synchronous call gives. ``wait=False``: the run, at once (read it with :meth:`run`,
        await it with :meth:`wait`)."""
        body: dict[str, Any] = {"analysis": dict(analysis), "format": format}
        if name is not None:
            body["name"] = name
        # its submission reads the cohort's size for the schedule: awaited as a computation
        run = self._c._object("POST", f"/projects/{_segment(project_id)}/analysis-runs",
                              json=body, computes=True)
        if not wait:
            return run
        if progress is not None:
            progress(run)
        return self.wait(run["id"], progress=progress, every=every)

    def analyse_now(self, project_id: str, analysis: Mapping[str, Any],
                    format: str = "json", name: str | None = None) -> Obj:
        """The synchronous call: one request, answered with the output however long the
        server computes (never cut by the client's read timeout, but by a proxy's or a
        laptop's sleep it may be: :meth:`analyse` submits and polls instead)."""
        body: dict[str, Any] = {"analysis": dict(analysis), "format": format}
        if name is not None:
            body["name"] = name
        return self._c._object("POST", f"/projects/{_segment(project_id)}/analyses",
                               json=body, computes=True)

    def run(self, run_id: str) -> Obj:
        """A submitted analysis's run: running (with its progress), done (with ``output``),
        refused, failed or lost (with ``problem``)."""
        return self._c._object("GET", f"/analysis-runs/{_segment(run_id)}", polls=True)

    def wait(self, run_id: str, *, progress: Callable[[Obj], None] | None = None,
             every: float = 2.0, timeout: float | None = None) -> Obj:
        """The run's output once it is answered (polled, a network failure retried for a
        minute: a laptop that slept picks up where it was); a refusal raises
        :class:`StrongroomError` as the synchronous call would. ``timeout``: give up after
        that many seconds (TimeoutError), by default never."""
        started = time.monotonic()
        pause, failing = 0.1, 0.0
        while True:
            try:
                run = self.run(run_id)
                failing = 0.0
            except httpx.TransportError:  # a timeout too: the poll is sent again
                failing = failing or time.monotonic()
                if time.monotonic() - failing > 60:
                    raise
                time.sleep(min(every, 5.0))
                continue
            if run.get("status") != "running":
                break
            if progress is not None:
                progress(run)
            if timeout is not None and time.monotonic() - started > timeout:
                raise TimeoutError(f"analysis run {run_id} is still running")
            # no sooner than needed: at the next moment it may be answered, if that is near
            due = run.get("step_at")
            elapsed = run.get("elapsed")
            wait = pause
            if isinstance(due, int | float) and isinstance(elapsed, int | float):
                wait = min(pause, max(0.05, float(due) - float(elapsed) + 0.05))
            time.sleep(wait)
            pause = min(every, pause * 2)
        if progress is not None:
            progress(run)
        if run.get("status") == "done" and isinstance(run.get("output"), dict):
            output: Obj = run["output"]
            return output
        problem = run.get("problem") or {}
        raise StrongroomError(int(problem.get("status") or 500),
                              str(problem.get("error") or run.get("status")),
                              [str(r) for r in problem.get("reasons") or
                               [f"the analysis run ended {run.get('status')}"]],
                              problem.get("retry_after"))


class Jobs(_Section):
    """A researcher's own code, run in the sandbox next to the data (only checked outputs
    come back; see docs/how-to/run-a-job.md)."""

    def submit(self, project_id: str, action: str, code: bytes | os.PathLike[str] | str
               ) -> Obj:
        """Run ``action`` of project.yaml; ``code``: the repository's folder, or its zip."""
        from strongroom.jobs.code import pack

        archive = code if isinstance(code, bytes) else pack(Path(code))
        return self._c._object("POST", f"/projects/{_segment(project_id)}/pipeline-jobs",
                               json={"action": action,
                                     "code": base64.b64encode(archive).decode()})

    def get(self, job_id: str) -> Obj:
        return self._c._object("GET", f"/pipeline-jobs/{_segment(job_id)}")

    def list(self, project_id: str) -> Objs:
        return self._c._objects(f"/projects/{_segment(project_id)}/pipeline-jobs")

    def code(self, job_id: str) -> bytes:
        """The code a job ran, as a zip (output checkers read it beside its outputs)."""
        return self._c.content(f"/pipeline-jobs/{_segment(job_id)}/code")

    def wait(self, job_id: str, timeout: float = 3600.0, every: float = 1.0) -> Obj:
        """The job once it has ended (TimeoutError if it has not within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job["status"] in ("finished", "failed", "refused"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']}")
            time.sleep(every)


class Outputs(_Section):
    """Checked outputs: verdicts, release requests, reviews, downloads of released bytes."""

    def list(self, project_id: str | None = None, status: str | None = None,
             queue: bool = False) -> Objs:
        params: dict[str, Any] = {"queue": queue}
        if project_id is not None:
            params["project_id"] = project_id
        if status is not None:
            params["status"] = status
        return self._c._objects("/outputs", params=params)

    def get(self, output_id: str) -> Obj:
        return self._c._object("GET", f"/outputs/{_segment(output_id)}")

    def request_release(self, output_id: str, justification: str | None = None) -> Obj:
        return self._c._object("POST", f"/outputs/{_segment(output_id)}/request",
                               json={"justification": justification})

    def withdraw(self, output_id: str) -> Obj:
        return self._c._object("POST", f"/outputs/{_segment(output_id)}/withdraw")

    def review(self, output_id: str, approve: bool, reason: str = "") -> Obj:
        return self._c._object("POST", f"/outputs/{_segment(output_id)}/review",
                               json={"approve": approve, "reason": reason})

    def content(self, output_id: str) -> bytes:
        """The bytes of an output under review (output checkers)."""
        return self._c.content(f"/outputs/{_segment(output_id)}/content")

    def download(self, output_id: str) -> bytes:
        """A released output's bytes (refused for anything not released)."""
        return self._c.content(f"/outputs/{_segment(output_id)}/download")

    def table(self, output_id: str, format: str = "csv") -> bytes:
        """A released output as a labelled tidy table: ``csv`` or ``parquet`` bytes."""
        return self._c.content(f"/outputs/{_segment(output_id)}/table",
                               params={"format": format})

    def frame(self, output_id: str) -> Any:
        """A released output as a labelled Polars DataFrame (``.to_pandas()`` for pandas)."""
        import polars as pl  # only for those who ask for frames

        return pl.read_parquet(io.BytesIO(self.table(output_id, "parquet")))


class Watch(_Section):
    """Watch alerts: read, acknowledge, resolve, reopen, export; appeals and their review."""

    def alerts(self, *, status: str | None = None, severity: str | None = None,
               detector: str | None = None, project_id: str | None = None,
               institution_id: str | None = None, person_id: str | None = None,
               since: dt.datetime | str | None = None, limit: int = 100,
               offset: int = 0) -> Objs:
        """Alerts, most recently seen first; every filter narrows (``detector`` may be a
        family ending in ".", e.g. ``"limit."``)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        for name, value in (("status", status), ("severity", severity),
                            ("detector", detector), ("project_id", project_id),
                            ("institution_id", institution_id), ("person_id", person_id)):
            if value is not None:
                params[name] = value
        if since is not None:
            params["since"] = since.isoformat() if isinstance(since, dt.datetime) else since
        return self._c._objects("/watch/alerts", params=params)

    def get(self, alert_id: str) -> Obj:
        return self._c._object("GET", f"/watch/alerts/{_segment(alert_id)}")

    def acknowledge(self, alert_id: str, note: str = "") -> Obj:
        return self._c._object("POST", f"/watch/alerts/{_segment(alert_id)}/acknowledge",
                               json={"note": note})

    def resolve(self, alert_id: str, reason: str) -> Obj:
        """Close the alert with the reason (required; a suspension stays until lifted)."""
        return self._c._object("POST", f"/watch/alerts/{_segment(alert_id)}/resolve",
                               json={"reason": reason})

    def reopen(self, alert_id: str, reason: str = "") -> Obj:
        return self._c._object("POST", f"/watch/alerts/{_segment(alert_id)}/reopen",
                               json={"reason": reason})

    def appeal(self, alert_id: str, text: str) -> Obj:
        """Appeal the suspension an alert set (the person suspended, or the project lead)."""
        return self._c._object("POST", f"/watch/alerts/{_segment(alert_id)}/appeal",
                               json={"text": text})

    def review_appeal(self, alert_id: str, *, lift: bool, reason: str) -> Obj:
        """A custodian admin's decision; lifting takes two admins (the second confirms)."""
        return self._c._object("POST", f"/watch/alerts/{_segment(alert_id)}/appeal/review",
                               json={"decision": "lift" if lift else "uphold",
                                     "reason": reason})

    def export(self, alert_id: str, format: str = "ocsf") -> Obj | str:
        """The alert as OCSF or ECS (a dict) or as one CEF line (a str)."""
        text = self._c.content(f"/watch/alerts/{_segment(alert_id)}/export?format="
                               f"{quote(format, safe='')}").decode()
        if format == "cef":
            return text.strip()
        found: Obj = json.loads(text)
        return found


class Transfers(_Section):
    """A project's transfer limits, large transfers declared ahead, record-level extracts."""

    def limits(self, project_id: str) -> Obj:
        """The limits that hold for your transfers in the project: the project's, your own and
        your institutions' (yours and the lead's, the smallest of each)."""
        return self._c._object("GET", f"/projects/{_segment(project_id)}/limits")

    def declare(self, project_id: str, description: str, starts_at: dt.datetime,
                ends_at: dt.datetime, *, record_participants: int = 0, cells: int = 0,
                bytes_out: int = 0) -> Obj:
        """Declare a large job ahead of running it (a custodian admin approves it)."""
        return self._c._object("POST", f"/projects/{_segment(project_id)}/jobs", json={
            "description": description, "record_participants": record_participants,
            "cells": cells, "bytes_out": bytes_out, "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat()})

    def declared(self, project_id: str) -> Objs:
        return self._c._objects(f"/projects/{_segment(project_id)}/jobs")

    def extract(self, project_id: str, format: str = "csv", offset: int = 0,
                limit: int | None = None) -> bytes:
        """A traceable record-level extract (the project needs the export permission)."""
        return self._c.post_content(f"/projects/{_segment(project_id)}/extracts", json={
            "format": format, "offset": offset, "limit": limit})


class Privacy(_Section):
    """Differentially private queries against a project's privacy budget, and the budget."""

    def query(self, project_id: str, query: Mapping[str, Any]) -> Obj:
        """Answer a DP query (``{"kind": "mean", "column": …, "bounds": [lo, hi], "epsilon":
        "0.1"}``); its ε is charged first. The answer holds estimates with confidence
        intervals, the noise scales and what remains of the budget."""
        return self._c._object("POST", f"/projects/{_segment(project_id)}/dp/queries",
                               json={"query": dict(query)})

    def risk(self, project_id: str, k: int = 5) -> Obj:
        """The re-identification risk report of the project's extract candidate (committee,
        admins, security analysts, auditors): k, class sizes, uniques, l, t, population risk."""
        return self._c._object("GET", f"/projects/{_segment(project_id)}/risk",
                               params={"k": k})

    def budget(self, project_id: str) -> Obj:
        """The project's DP mode, its exact budget (total, spent, remaining), latest charges."""
        return self._c._object("GET", f"/projects/{_segment(project_id)}/dp/budget")

    def configure(self, project_id: str, *, reason: str, mode: str | None = None,
                  epsilon: str | float | None = None,
                  delta: str | float | None = None) -> Obj:
        """Set DP mode (``"dp"`` or ``"exact"``) and the budget's totals (committee, admins),
        with the reason (audited, shown to the security team). Give amounts as strings
        (``"1"``, ``"0.5"``) to keep them exact."""
        body: Obj = {"mode": mode, "epsilon": epsilon, "delta": delta, "reason": reason}
        return self._c._object("PUT", f"/projects/{_segment(project_id)}/dp",
                               json={k: v for k, v in body.items() if v is not None})
