"""A PostgreSQL 15 server of its own, in a folder, on a free loopback port: the Redshift stand-in and the
storage of a Postgres-backed Dagster instance. Built with the machine's `initdb` and `pg_ctl`; as root it
runs as the `postgres` system user, since PostgreSQL refuses to run as root. TCP logins need the password
(scram-sha-256, as Redshift checks one), so a wrong password is refused as it would be in production."""
from __future__ import annotations

import dataclasses
import ctypes
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str = "postgres"
    password: str = ""
    database: str = "postgres"

    @property
    def params(self) -> dict:
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password,
                "database": self.database}

    def with_database(self, name: str) -> "Server":
        return dataclasses.replace(self, database=name)

    def connect(self, database: str | None = None):
        import psycopg2
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=database or self.database, connect_timeout=5)
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> None:
        conn = self.connect()  # not `with conn`: psycopg2 would open a transaction, which CREATE DATABASE refuses
        try:
            conn.cursor().execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()


def bin_dir() -> Path:
    """The newest server binaries Debian's postgresql package installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb): run "
                           "`make postgresql` (Debian's postgresql package)")
    return Path(found[-1]).parent


def _as_server_user() -> dict:
    """Run the server as `postgres` when we are root (initdb refuses root); else as ourselves."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root, and there is no `postgres` user to run PostgreSQL as: install "
                           "Debian's postgresql package (`make postgresql`)") from None

    def demote():
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        _die_with_parent()
    return {"preexec_fn": demote, "owner": user}


try:  # loaded here: nothing may be imported between fork and exec
    _PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except OSError:
    _PRCTL = None


def _die_with_parent() -> None:
    """Linux: the server gets SIGINT (a fast shutdown) when the process that started it dies, even by
    SIGKILL, so a killed test or demo leaves no server behind."""
    if _PRCTL is not None:
        _PRCTL(1, 2)  # PR_SET_PDEATHSIG, SIGINT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running() -> Iterator[Server]:
    """A fresh server (loopback only; user `postgres` with a random password), stopped and deleted on exit.
    Its folder is in the system's temporary folder: the server's user must reach it, and a test's own folder
    is private."""
    binaries, who = bin_dir(), _as_server_user()
    owner = who.pop("owner", None)
    root = Path(tempfile.mkdtemp(prefix="music-feedback-pg-"))
    data = root / "data"
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    port, password = _free_port(), secrets.token_hex(16)
    pwfile = root / "password"
    pwfile.write_text(password)
    pwfile.chmod(0o600)
    if owner is not None:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    run = dict(check=True, capture_output=True, text=True, **who)
    try:
        subprocess.run([str(binaries / "initdb"), "-D", str(data), "--auth-local=trust",
                        "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-U", "postgres", "-E", "UTF8",
                        "--no-sync"], **run)
        # The postmaster is our own child (not pg_ctl's daemon), so it can die with us.
        log = open(root / "server.log", "w")
        server = subprocess.Popen([str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
                                   "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
                                  stdout=log, stderr=subprocess.STDOUT, preexec_fn=who.get("preexec_fn", _die_with_parent))
        _wait_ready(server, Server("127.0.0.1", port, password=password))
    except subprocess.CalledProcessError as exc:
        text = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr or exc.stdout}{text[-1000:]}") from None
    except (subprocess.SubprocessError, OSError) as exc:  # e.g. the switch to `postgres` was not permitted
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL's initdb could not be run{' as the postgres user' if owner else ''} "
                           f"({exc}): run the tests as a user other than root, or as a root that may switch "
                           "users (CAP_SETUID)") from None
    try:
        yield Server("127.0.0.1", port, password=password)
    finally:
        server.send_signal(2)  # SIGINT: the fast shutdown
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: subprocess.Popen, probe: Server, timeout: float = 60) -> None:
    import time
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe.connect().close()
            return
        except Exception:  # psycopg2.OperationalError until the server accepts connections
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise subprocess.CalledProcessError(server.poll() or 1, "postgres", "", "did not accept connections")
            time.sleep(0.1)


def redshift_env(server: Server) -> dict[str, str]:
    """The Redshift adapter's settings for this server (the stand-in speaks the same wire protocol)."""
    return {"MUSIC_FEEDBACK_REDSHIFT_HOST": server.host, "MUSIC_FEEDBACK_REDSHIFT_PORT": str(server.port),
            "MUSIC_FEEDBACK_REDSHIFT_USER": server.user, "MUSIC_FEEDBACK_REDSHIFT_PASSWORD": server.password,
            "MUSIC_FEEDBACK_REDSHIFT_DATABASE": server.database, "MUSIC_FEEDBACK_REDSHIFT_SSLMODE": "disable"}
