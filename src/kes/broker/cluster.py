"""A local Apache Kafka cluster in KRaft mode: 1 or 3 combined broker+controller nodes.

State (nodes, pids, ports, folders) is kept in ``<data_dir>/cluster.json`` so that
``kes broker status|stop|kill|restart`` work from any later process.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from kes.broker.errors import BrokerError
from kes.broker.jars import java_executable, libs_dir
from kes.broker.security import ADMIN, Secrets, UserFiles, listener_properties

DEFAULT_PORT = 9092
DEFAULT_DATA_DIR = ".kes/broker"
CONTROLLER_PORT_OFFSET = 100
TLS_PORT_OFFSET = 50  # a secured node's mTLS listener
STATE_FILE = "cluster.json"


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    dir: str
    pid: int | None = None
    tls_port: int | None = None  # secured clusters: the mTLS listener

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ports(self) -> list[int]:
        return [p for p in (self.port, self.tls_port, self.controller_port) if p is not None]

    def is_running(self) -> bool:
        if self.pid is not None and _pid_alive(self.pid):
            return True
        # The state file can be stale (another process restarted this node): look for it.
        self.pid = _find_node_process(self.dir)
        return self.pid is not None


@dataclass
class LocalCluster:
    """A set of local Kafka nodes sharing one data folder."""

    data_dir: str
    nodes: list[Node] = field(default_factory=list)
    cluster_id: str = ""
    # 512 MB ran out (OutOfMemoryError, then minutes of GC) on a broker that had served
    # four runs of the test suite, i.e. some 10,000 topics; 1 GB leaves room.
    heap_mb: int = 1024
    # Broker settings on top of kes's (for tests, e.g. a fast log cleaner); kept in
    # cluster.json so a restart keeps them.
    properties: dict[str, str] = field(default_factory=dict)
    secure: bool = False  # SASL_SSL + mTLS listeners, ACLs enforced (kes.broker.security)

    # ---- construction -------------------------------------------------------

    @classmethod
    def load(cls, data_dir: str | Path = DEFAULT_DATA_DIR) -> LocalCluster | None:
        path = Path(data_dir) / STATE_FILE
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        nodes = [Node(**n) for n in raw.pop("nodes")]
        return cls(nodes=nodes, **raw)

    @classmethod
    def plan(
        cls,
        data_dir: str | Path = DEFAULT_DATA_DIR,
        nodes: int = 1,
        port: int = DEFAULT_PORT,
        properties: dict[str, str] | None = None,
        secure: bool = False,
    ) -> LocalCluster:
        if nodes not in (1, 3):
            raise BrokerError(f"--nodes must be 1 or 3, got {nodes}.")
        root = Path(data_dir).resolve()
        return cls(
            data_dir=str(root),
            properties=dict(properties or {}),
            cluster_id=_new_cluster_id(),
            secure=secure,
            nodes=[
                Node(
                    node_id=i + 1,
                    port=port + i,
                    controller_port=port + CONTROLLER_PORT_OFFSET + i,
                    dir=str(root / f"node-{i + 1}"),
                    tls_port=port + TLS_PORT_OFFSET + i if secure else None,
                )
                for i in range(nodes)
            ],
        )

    @property
    def bootstrap_servers(self) -> str:
        """Where clients connect: PLAINTEXT, or SASL_SSL (SCRAM-SHA-512) when secure."""
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def tls_bootstrap_servers(self) -> str:
        """A secured cluster's mTLS listeners (clients authenticate by certificate)."""
        return ",".join(f"127.0.0.1:{n.tls_port}" for n in self.nodes if n.tls_port)

    @property
    def secrets(self) -> Secrets:
        return Secrets(self.data_dir)

    def admin_conf(self) -> dict[str, str]:
        """librdkafka settings of the admin principal (SASL_SSL), with the servers."""
        if not self.secure:
            return {"bootstrap.servers": self.bootstrap_servers}
        return self.secrets.sasl_conf(ADMIN)

    def add_user(self, name: str) -> UserFiles:
        """Create (or renew the files of) a SCRAM user with a client certificate; returns
        where its settings are. The user has no rights until ACLs grant them."""
        if not self.secure:
            raise BrokerError(
                f"the cluster in {self.data_dir} is not secured (started without --secure): "
                "it has no users."
            )
        from kes.kafka.security import register_scram_user

        files, password = self.secrets.ensure_user_files(
            name, self.bootstrap_servers, self.tls_bootstrap_servers
        )
        register_scram_user(
            self._bootstrap_admin_conf(), name, password, [n.bootstrap for n in self.running()]
        )
        return files

    def _bootstrap_admin_conf(self) -> dict[str, str]:
        """The admin over mTLS: works before any SCRAM credential exists."""
        if not self.secure:
            return {"bootstrap.servers": self.bootstrap_servers}
        return {"bootstrap.servers": self.tls_bootstrap_servers, **self.secrets.tls_conf(ADMIN)}

    def node(self, node_id: int) -> Node:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        ids = ", ".join(str(n.node_id) for n in self.nodes)
        raise BrokerError(f"no node {node_id} in {self.data_dir}; nodes are {ids}.")

    def save(self) -> None:
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        state = asdict(self)
        tmp = Path(self.data_dir) / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(Path(self.data_dir) / STATE_FILE)

    # ---- lifecycle ----------------------------------------------------------

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.is_running()]

    def start(self, timeout: float = 120.0) -> None:
        """Format (first time), launch every node, wait until all answer metadata."""
        java = java_executable()
        libs = libs_dir()
        for n in self.nodes:
            if n.is_running():
                continue
            for p in n.ports:
                _check_port_free(p)
        if self.secure:
            self._ensure_secrets()
        try:
            for n in self.nodes:
                if not n.is_running():
                    self._launch(n, java, libs)
            self.save()
            self.wait_ready(timeout)
            if self.secure:
                self.add_user(ADMIN)
        except BaseException:
            self._kill_all()
            self.save()
            raise

    def restart(self, node_id: int, timeout: float = 120.0) -> None:
        n = self.node(node_id)
        if n.is_running():
            self.stop_node(n)
        for p in n.ports:
            _check_port_free(p)
        self._launch(n, java_executable(), libs_dir())
        self.save()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self._signal(n, signal.SIGKILL)
            self.save()
            raise

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: a crash, for fault tests."""
        n = self.node(node_id)
        if not n.is_running():
            raise BrokerError(f"node {node_id} is not running; nothing to kill.")
        self._signal(n, signal.SIGKILL)
        self.save()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every node gracefully (SIGTERM), SIGKILL after ``timeout``."""
        for n in self.nodes:
            if n.is_running():
                assert n.pid is not None
                os.kill(n.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            while n.is_running() and time.monotonic() < deadline:
                time.sleep(0.2)
            if n.is_running():
                self._signal(n, signal.SIGKILL)
            n.pid = None
        self.save()

    def stop_node(self, n: Node, timeout: float = 60.0) -> None:
        if n.pid is not None and n.is_running():
            os.kill(n.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while n.is_running() and time.monotonic() < deadline:
                time.sleep(0.2)
            if n.is_running():
                self._signal(n, signal.SIGKILL)
        n.pid = None
        self.save()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until every running node is in the cluster metadata."""
        from kes.kafka.clients import admin_with

        for n in self.nodes:
            n.is_running()  # refresh pids: another process may have restarted a node
        expected = {n.node_id for n in self.nodes if n.pid is not None}
        admin = admin_with(self._bootstrap_admin_conf(), log_level=0)
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.node_id in expected and not n.is_running():
                    raise BrokerError(
                        f"Kafka node {n.node_id} (port {n.port}) exited during start-up. "
                        f"Last lines of {self.log_path(n)}:\n{self.log_tail(n)}"
                    )
            try:
                md = admin.list_topics(timeout=2)
                seen = set(md.brokers)
                if expected <= seen and md.controller_id >= 0:
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise BrokerError(
            f"Kafka did not become ready within {timeout:.0f}s (brokers up: {sorted(seen)}, "
            f"expected {sorted(expected)}). Last lines of the log:\n"
            + "\n".join(self.log_tail(n) for n in self.nodes)
        )

    # ---- files --------------------------------------------------------------

    def log_path(self, n: Node) -> Path:
        return Path(n.dir) / "logs" / "server.log"

    def log_tail(self, n: Node, lines: int = 20) -> str:
        out = []
        for path in (Path(n.dir) / "logs" / "server.out", self.log_path(n)):
            if path.exists():
                out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out[-lines:]) or "(no log written)"

    def _properties(self, n: Node) -> str:
        count = len(self.nodes)
        rf = min(3, count)
        min_isr = 1 if count == 1 else 2
        voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in self.nodes)
        controller = f"CONTROLLER://127.0.0.1:{n.controller_port}"
        if self.secure:
            # Every listener is authenticated, the controller's too (by the nodes'
            # certificates): a PLAINTEXT controller listener would let anyone on the host
            # act as ANONYMOUS, which would then have to be a super user.
            public = f"SASL_SSL://127.0.0.1:{n.port},MTLS://127.0.0.1:{n.tls_port}"
            security = listener_properties(self.secrets, n.node_id)
        else:
            public = f"PLAINTEXT://127.0.0.1:{n.port}"
            security = {
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            }
        props = {
            "process.roles": "broker,controller",
            "node.id": n.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"{public},{controller}",
            "advertised.listeners": public,
            "controller.listener.names": "CONTROLLER",
            **security,
            "log.dirs": str(Path(n.dir) / "data"),
            # An event store never wants a topic created by a typo, nor an out-of-sync leader.
            "auto.create.topics.enable": "false",
            "unclean.leader.election.enable": "false",
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": 10,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": 0,
            # A writer that dies mid-transaction holds back readers and the next owner until
            # the coordinator aborts it: check for timed-out transactions every second
            # (Kafka's default sweep is every 10 s), so the wait is the timeout, not +10 s.
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000,
            # Notice a dead node within seconds (it leaves every ISR when fenced), so a
            # local crash test sees the failover rather than a 30 s stall of acks=all.
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 1000,
            "replica.lag.time.max.ms": 10000,
            "num.partitions": 1,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "log.segment.bytes": 256 * 1024 * 1024,
            **self.properties,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _ensure_secrets(self) -> None:
        """The CA, each node's certificate and the admin's files (made once, kept)."""
        for n in self.nodes:
            self.secrets.ensure_node(n.node_id)
        self.secrets.ensure_user_files(ADMIN, self.bootstrap_servers, self.tls_bootstrap_servers)

    def _launch(self, n: Node, java: str, libs: Path) -> None:
        node_dir = Path(n.dir)
        logs = node_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        config = node_dir / "server.properties"
        config.write_text(self._properties(n))
        log4j = resources.files("kes.broker").joinpath("log4j2.xml")
        classpath = f"{libs}/*"
        if not (node_dir / "data" / "meta.properties").exists():
            fmt = subprocess.run(
                [
                    java,
                    "-cp",
                    classpath,
                    f"-Dlog4j2.configurationFile={log4j}",
                    f"-Dkafka.logs.dir={logs}",
                    "kafka.tools.StorageTool",
                    "format",
                    "--ignore-formatted",
                    f"--cluster-id={self.cluster_id}",
                    "-c",
                    str(config),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise BrokerError(
                    f"formatting the KRaft storage of node {n.node_id} in {node_dir} failed "
                    f"(exit {fmt.returncode}); check that the folder is writable and not "
                    f"formatted for another cluster.\n{(fmt.stdout + fmt.stderr)[-2000:]}"
                )
        with open(logs / "server.out", "ab") as out:
            proc = subprocess.Popen(
                [
                    java,
                    f"-Xms{self.heap_mb // 2}m",
                    f"-Xmx{self.heap_mb}m",
                    "-XX:+UseG1GC",
                    "-XX:MaxGCPauseMillis=20",
                    "-XX:ActiveProcessorCount=2",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={log4j}",
                    f"-Dkafka.logs.dir={logs}",
                    "-cp",
                    classpath,
                    "kafka.Kafka",
                    str(config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives the CLI that started it
                cwd=node_dir,
            )
        n.pid = proc.pid

    def _signal(self, n: Node, sig: signal.Signals) -> None:
        if n.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(n.pid, sig)
        deadline = time.monotonic() + 30
        while _pid_alive(n.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        n.pid = None

    def _kill_all(self) -> None:
        for n in self.nodes:
            self._signal(n, signal.SIGKILL)


def _new_cluster_id() -> str:
    """A Kafka Uuid in base64 that no command line can mistake for an option."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _pid_alive(pid: int) -> bool:
    try:
        # Reap our own child if it died; ignore when it is not our child.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def _find_node_process(node_dir: str) -> int | None:
    """The pid of a live Kafka process started with this node's server.properties."""
    config = str(Path(node_dir) / "server.properties")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in args and config.encode() in args:
            pid = int(entry.name)
            if _pid_alive(pid):
                return pid
    return None


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise BrokerError(
                f"port {port} on 127.0.0.1 is already in use ({exc.strerror}); stop the "
                "process using it or pick other ports with --port."
            ) from exc
