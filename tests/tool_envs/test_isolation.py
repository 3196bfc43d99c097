"""Isolation of tool calls: hard kills, resource limits, concurrency, and nothing leaked.

The three failures of issue 14 are here: a BFCL MathAPI call that holds the GIL (``power`` with a huge
exponent), a spinning backend (with the idle CPU measured afterwards), and 8 concurrent episodes whose
calls take 1.5 s each.
"""
from __future__ import annotations

import asyncio
import json
import os
import textwrap
import time

import pytest

from tool_envs import ToolCall, Task, load_spec, spec_from_mapping
from tool_envs.env import ToolEnv
from tool_envs.executor import configure_executor, executor_config
from tool_envs.oracle import TextTokenizer, oracle_generate
from tool_envs.procpool import process_pool, reset_process_pool
from tool_envs.runner import RunnerConfig, run_episode

BACKEND = textwrap.dedent(
    """
    import time

    class Lab:
        def __init__(self):
            self.log = []

        def setup(self, state):
            self.log = list(state.get("log", []))

        def note(self, text):
            self.log.append(text)
            return {"log": self.log}

        def spin(self):
            self.log.append("spun")
            while True:
                pass

        def nap(self, seconds):
            time.sleep(seconds)
            return f"slept {seconds}"

        def hog(self, mb):
            return len(bytearray(mb << 20))

        def burn(self):
            end = time.time() + 60
            n = 0
            while time.time() < end:
                n += 1
            return n
    """
)

TOOLS = {
    "note": {"text": {"type": "string"}},
    "spin": {},
    "nap": {"seconds": {"type": "number"}},
    "hog": {"mb": {"type": "integer"}},
    "burn": {},
}


def _schema(isolation: str, **limits) -> dict:
    return {
        "name": "lab",
        "isolation": isolation,
        "backend": {"class": "lab_backend.Lab", "init_method": "setup"},
        "limits": {"call_timeout_s": 0.5, "max_calls_per_turn": 8, **limits},
        "tools": [
            {"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": p, "required": list(p)}}}
            for n, p in TOOLS.items()
        ],
    }


@pytest.fixture()
def lab(tmp_path):
    """A user environment kept outside the repository: its backend module sits next to its schema file."""
    (tmp_path / "lab_backend.py").write_text(BACKEND)

    def make(isolation: str = "process", **limits) -> ToolEnv:
        path = tmp_path / f"lab_{isolation}_{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(_schema(isolation, **limits)))
        return ToolEnv(load_spec(path))

    return make


def _children(ppid: int | None) -> list[tuple[int, str, int]]:
    """``(pid, state, cpu ticks)`` of the live children of ``ppid`` (from /proc)."""
    out = []
    if ppid is None:
        return out
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == ppid:
            out.append((int(entry), fields[0], int(fields[11]) + int(fields[12])))
    return out


def _own_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_math_api_huge_power_is_killed_while_other_episodes_run(run_with_heartbeat):
    """BFCL MathAPI ``power(10, 10**8)`` holds the GIL inside one C call: in-process it froze the whole
    trainer and its timeout never fired. In a worker process it is killed and the event loop keeps going."""
    data = load_spec(os.path.join(os.path.dirname(__import__("tool_envs").__file__), "envs", "math_api", "env.json")).to_dict()
    data["limits"]["call_timeout_s"] = 1.0
    env = ToolEnv(spec_from_mapping(data))
    assert env.isolation == "process"  # BFCL backends are isolated by default

    def calls():
        slow = env.new_episode().aexecute([ToolCall("power", {"base": 10, "exponent": 10**8}),
                                           ToolCall("square_root", {"number": 2, "precision": 10**7})])
        fast = [env.new_episode().aexecute([ToolCall("add", {"a": i, "b": 1})]) for i in range(20)]
        return asyncio.gather(slow, *fast)

    results, elapsed, ticks = run_with_heartbeat(calls)
    (power, root), fast = results[0], results[1:]
    assert power.error and ("did not finish within 1 s" in power.content or "out of memory" in power.content), power.content
    assert root.error  # never ran: its message was stopped at the power call
    assert [json.loads(r[0].content)["result"] for r in fast] == [i + 1 for i in range(20)]
    assert elapsed < 15 and ticks >= 3, (elapsed, ticks)


def test_math_api_power_in_a_recorded_episode_is_scored_without_running_it_again():
    """The reward scores the runner's recording: the model's hostile call is not executed a second time."""
    from reward.multi_turn import score_episode

    data = load_spec(os.path.join(os.path.dirname(__import__("tool_envs").__file__), "envs", "math_api", "env.json")).to_dict()
    data["limits"]["call_timeout_s"] = 1.0
    env = ToolEnv(spec_from_mapping(data))
    task = Task(id="pow", envs=["math_api"], turns=[[{"role": "user", "content": "10 to the 10**8?"}]],
                ground_truth={"calls": [[ToolCall("add", {"a": 1, "b": 2})]], "final_state": None})
    hostile = Task(id="pow", envs=["math_api"], turns=task.turns,
                   ground_truth={"calls": [[ToolCall("power", {"base": 10, "exponent": 10**8})]], "final_state": None})
    tok = TextTokenizer()
    traj = asyncio.run(run_episode(tokenizer=tok, env=env, task=task, generate=oracle_generate(tok, hostile),
                                   config=RunnerConfig(max_response_tokens=10**6)))
    assert traj.turns[0][0].results[0].error
    t0 = time.monotonic()
    r = score_episode(traj, task)
    assert time.monotonic() - t0 < 0.9  # a replay would wait for the 1 s timeout again
    assert not r.success and r.per_turn[0].response_ok is False


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_spinning_backend_is_stopped_and_leaves_the_process_idle(lab, isolation):
    """A ``while True: pass`` call is stopped at its timeout; afterwards nothing burns CPU (with 9 abandoned
    spinning threads the process used 1.5 s of CPU in 3 s of idling before)."""
    env = lab(isolation)
    for _ in range(9):
        ep = env.new_episode()
        r = ep.execute([ToolCall("spin", {})])[0]
        assert r.error and "did not finish within 0.5 s" in r.content
    pool = process_pool(executor_config().process_workers)
    time.sleep(0.3)
    cpu0 = time.process_time()
    kids0 = {pid: ticks for pid, _, ticks in _children(pool.zygote_pid)}
    time.sleep(2.0)
    cpu = time.process_time() - cpu0
    kids1 = {pid: ticks for pid, _, ticks in _children(pool.zygote_pid)}
    worker_ticks = sum(kids1[p] - kids0.get(p, 0) for p in kids1)
    assert cpu < 0.2, f"the trainer burned {cpu:.2f} s of CPU in 2 s of idling"
    assert worker_ticks < 0.2 * os.sysconf("SC_CLK_TCK"), f"workers burned {worker_ticks} ticks while idle"


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_100_timed_out_calls_leak_no_thread_and_no_process(lab, isolation):
    env = lab(isolation, call_timeout_s=0.05)
    env.new_episode().execute([ToolCall("note", {"text": "warm"})])  # start the watchdog / a worker
    pool = process_pool(executor_config().process_workers)
    threads0, kids0 = _own_threads(), _children(pool.zygote_pid)
    for i in range(100):
        ep = env.new_episode()
        assert ep.execute([ToolCall("spin", {})])[0].error
    deadline = time.monotonic() + 10
    while len(_children(pool.zygote_pid)) > len(kids0) + 1 and time.monotonic() < deadline:
        time.sleep(0.1)  # killed workers are gone as soon as the kernel has run their exit
    kids1 = _children(pool.zygote_pid)
    assert _own_threads() == threads0
    assert len(kids1) <= len(kids0) + 1 and all(state != "Z" for _, state, _ in kids1)  # no zombie, no pile-up
    if isolation == "process":
        assert pool.killed >= 100


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_eight_concurrent_episodes_with_slow_calls_overlap(lab, isolation):
    """8 episodes, each one 1.5 s call: about 1.5 s, not 12 s (the calls used to run in the event loop)."""
    env = lab(isolation, call_timeout_s=10)
    task = Task(id="nap", envs=["lab"], turns=[[{"role": "user", "content": "Nap."}]],
                ground_truth={"calls": [[ToolCall("nap", {"seconds": 1.5})]], "final_state": None})
    tok = TextTokenizer()

    async def main():
        return await asyncio.gather(*[
            run_episode(tokenizer=tok, env=env, task=task, generate=oracle_generate(tok, task),
                        config=RunnerConfig(max_response_tokens=10**6))
            for _ in range(8)])

    t0 = time.monotonic()
    trajs = asyncio.run(main())
    elapsed = time.monotonic() - t0
    assert [t.turns[0][0].results[0].content for t in trajs] == ["slept 1.5"] * 8
    assert elapsed < 6.0, f"8 concurrent 1.5 s calls took {elapsed:.1f} s"


def test_pool_is_bounded_and_sized_by_config(lab):
    old = executor_config().process_workers
    configure_executor(process_workers=2)
    try:
        env = lab("process", call_timeout_s=10)

        async def main():
            return await asyncio.gather(*[env.new_episode().aexecute([ToolCall("nap", {"seconds": 0.4})]) for _ in range(6)])

        t0 = time.monotonic()
        results = asyncio.run(main())
        elapsed = time.monotonic() - t0
        pool = process_pool(executor_config().process_workers)
        assert [r[0].content for r in results] == ["slept 0.4"] * 6
        assert pool.max_workers == 2 and len(_children(pool.zygote_pid)) <= 2
        assert elapsed >= 1.1  # three waves of two: the bound held
    finally:
        configure_executor(process_workers=old)


def test_a_busy_pool_serves_the_oldest_episode_first(lab):
    """An episode held back (by a timed-out call, say) does not queue behind a request of every younger episode."""
    old = executor_config().process_workers
    configure_executor(process_workers=1)
    try:
        env = lab("process", call_timeout_s=10)
        episodes = [env.new_episode() for _ in range(3)]  # created oldest first
        blocker = env.new_episode()
        served = []

        async def call(i: int, delay: float):
            await asyncio.sleep(delay)
            await episodes[i].aexecute([ToolCall("note", {"text": str(i)})])
            served.append(i)

        async def main():
            # The single worker naps while the episodes ask for it, youngest first.
            await asyncio.gather(blocker.aexecute([ToolCall("nap", {"seconds": 0.6})]),
                                 call(2, 0.1), call(1, 0.2), call(0, 0.3))

        asyncio.run(main())
        assert served == [0, 1, 2]
    finally:
        configure_executor(process_workers=old)


def test_memory_limit_fails_the_call_not_the_worker(lab):
    ep = lab("process", call_timeout_s=20, memory_mb=256).new_episode()
    big, ok = ep.execute([ToolCall("hog", {"mb": 1024}), ToolCall("note", {"text": "still here"})])
    assert big.error and "out of memory (limit 256 MB)" in big.content
    assert not ok.error and ep.state()["Lab"]["log"] == ["still here"]
    assert ep.execute([ToolCall("hog", {"mb": 16})])[0].content == str(16 << 20)


@pytest.mark.slow
def test_cpu_time_limit_fails_the_call(lab):
    ep = lab("process", call_timeout_s=60, cpu_time_s=1).new_episode()
    r = ep.execute([ToolCall("burn", {})])[0]
    assert r.error and "more than 1 s of CPU time" in r.content
    assert not ep.execute([ToolCall("note", {"text": "after"})])[0].error


def test_pool_shutdown_leaves_no_process(lab):
    env = lab("process")
    env.new_episode().execute([ToolCall("note", {"text": "x"})])
    pool = process_pool(executor_config().process_workers)
    zygote = pool.zygote_pid
    assert _children(zygote)
    reset_process_pool()
    deadline = time.monotonic() + 10
    while (_children(zygote) or os.path.exists(f"/proc/{zygote}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _children(zygote) and not os.path.exists(f"/proc/{zygote}")
    assert not env.new_episode().execute([ToolCall("note", {"text": "y"})])[0].error  # a new pool starts on demand


def test_a_worker_that_died_while_idle_is_replaced_transparently(lab):
    import signal

    env = lab("process", call_timeout_s=10)
    ep = env.new_episode()
    assert not ep.execute([ToolCall("note", {"text": "a"})])[0].error

    async def busy():  # several idle workers afterwards
        await asyncio.gather(*[env.new_episode().aexecute([ToolCall("nap", {"seconds": 0.3})]) for _ in range(4)])

    asyncio.run(busy())
    pool = process_pool(executor_config().process_workers)
    assert len(pool.worker_pids()) >= 4
    for pid in pool.worker_pids():
        os.kill(pid, signal.SIGKILL)  # e.g. the kernel's OOM killer
    time.sleep(0.2)
    r = ep.execute([ToolCall("note", {"text": "b"})])[0]
    assert not r.error and json.loads(r.content) == {"log": ["a", "b"]}


def test_a_stale_progress_reading_never_puts_a_deadline_in_the_past():
    """The trainer reads the worker's progress board while the worker writes it; a reading that pairs the new
    request number with the previous start time (0.0 on a fresh worker) killed a call that had just begun
    (1 in 5 runs of the 64-episode BFCL test)."""
    from tool_envs.procpool import call_deadline

    sent = 1000.0
    assert call_deadline((7, 0, 0.0), 7, sent, 10.0) == (sent + 10.0, 0)  # torn: request 7, fresh board's time
    assert call_deadline((7, 2, 999.0), 7, sent, 10.0) == (sent + 10.0, 2)  # the previous request's start
    assert call_deadline((7, 3, 1004.0), 7, sent, 10.0) == (1014.0, 3)  # a call that started after the send
    assert call_deadline((6, 5, 990.0), 7, sent, 10.0) == (sent + 10.0, -1)  # not started yet
