"""gomaml.distributed on real Dask clusters: a LocalCluster of worker processes, and a
scheduler and two workers started with the `dask` command on 127.0.0.1.

Truth here is the single-process result on the same tasks (bit for bit: shards are cut at its
block boundaries), and the serial study's rows."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import gomaml                                              # noqa: E402
from gomaml.distributed import ShardedTasks, max_shards, slice_tasks  # noqa: E402
from gomaml.study import TIMING_FIELDS, run_study          # noqa: E402
from conftest import make_tasks                             # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def kill_a_worker(client, holding=None):
    """SIGKILL one worker process (one holding `holding`'s data, if given); its nanny starts
    a new one. Returns the killed address."""
    pids = client.run(os.getpid)
    addr = sorted(pids)[0]
    if holding is not None:
        owners = {a for f in holding for a in client.who_has([f]).get(f.key, ())}
        addr = sorted(owners)[0]
    os.kill(pids[addr], signal.SIGKILL)
    return addr


def wait_for_workers(client, n, timeout=60):
    client.wait_for_workers(n, timeout=timeout)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss,T", [("squared", 1), ("logistic", 2), ("pseudo_huber", 1)])
def test_four_shards_are_bit_identical(client, rng, dtype, loss, T):
    tasks = make_tasks(rng, n=37, d=9, loss=loss, dtype=dtype)
    theta = 0.3 * rng.normal(size=9)
    with ShardedTasks(client, tasks, 4) as sharded:
        assert sharded.n_shards == 4 and sum(sharded.shard_sizes) == 37
        assert sharded.bit_identical and sharded.content_hash() == tasks.content_hash()
        for first_order in (False, True):
            L, g = gomaml.meta_loss_grad(theta, tasks, loss=loss, inner_steps=T,
                                         first_order=first_order)
            Ls, gs = gomaml.meta_loss_grad(theta, sharded, loss=loss, inner_steps=T,
                                           first_order=first_order)
            assert Ls == L and np.array_equal(gs, g)
        assert gomaml.meta_loss(theta, sharded, loss=loss, inner_steps=T) == \
            gomaml.meta_loss(theta, tasks, loss=loss, inner_steps=T)


@pytest.mark.parametrize("layout", ["same", "dense"])
def test_every_shard_count_is_bit_identical(client, rng, layout):
    tasks = make_tasks(rng, n=11, d=5, layout=layout)
    theta = rng.normal(size=5)
    L, g = gomaml.meta_loss_grad(theta, tasks, inner_lr=0.2)
    for S in range(1, max_shards(11, 5) + 1):
        with ShardedTasks(client, tasks, S) as sharded:
            Ls, gs = gomaml.meta_loss_grad(theta, sharded, inner_lr=0.2)
        assert Ls == L and np.array_equal(gs, g), S


def test_many_tasks_use_more_blocks_and_stay_bit_identical(client, rng):
    # beyond 64·64 tasks the block count grows (up to 1024): more shards are possible
    n = 64 * 64 + 640
    assert max_shards(n, 3) == n // 64
    tasks = make_tasks(rng, n=n, d=3, layout="dense")
    theta = rng.normal(size=3)
    L, g = gomaml.meta_loss_grad(theta, tasks)
    with ShardedTasks(client, tasks, 70) as sharded:
        assert (L, g.tolist()) == (lambda r: (r[0], r[1].tolist()))(
            gomaml.meta_loss_grad(theta, sharded))


def test_fit_reaches_the_same_theta(client, rng):
    tasks = make_tasks(rng, n=24, d=6)
    ref = gomaml.fit(tasks, inner_lr=0.2, max_iter=40, tol=1e-12)
    with ShardedTasks(client, tasks, 3) as sharded:
        res = gomaml.fit(sharded, inner_lr=0.2, max_iter=40, tol=1e-12)
    assert res.n_iter == ref.n_iter >= 20 and res.message == ref.message
    assert np.array_equal(res.theta, ref.theta) and res.loss == ref.loss
    assert res.config["tasks_hash"] == ref.config["tasks_hash"]


def test_a_worker_killed_mid_fit_changes_nothing(client, rng):
    tasks = make_tasks(rng, n=24, d=6)
    ref = gomaml.fit(tasks, inner_lr=0.2, max_iter=30, tol=1e-12)
    killed = []
    with ShardedTasks(client, tasks, 4) as sharded:
        def kill_at_10(it, theta, L, gn):
            if it == 10:
                killed.append(kill_a_worker(client, holding=sharded._futures))
        res = gomaml.fit(sharded, inner_lr=0.2, max_iter=30, tol=1e-12, callback=kill_at_10)
    assert killed and ref.n_iter > 10
    assert np.array_equal(res.theta, ref.theta) and res.n_iter == ref.n_iter
    wait_for_workers(client, 2)


def _loader(tasks, bounds):
    def load(i):
        return slice_tasks(tasks, bounds[i], bounds[i + 1])
    return load


def test_from_loader_at_block_boundaries_is_bit_identical_and_recovers(client, rng):
    tasks = make_tasks(rng, n=20, d=7, weighted=False)
    theta = rng.normal(size=7)
    L, g = gomaml.meta_loss_grad(theta, tasks)
    sharded = ShardedTasks.from_loader(client, _loader(tasks, [0, 5, 10, 15, 20]), 4)
    assert sharded.bit_identical and sharded.shard_sizes == [5, 5, 5, 5]
    Ls, gs = gomaml.meta_loss_grad(theta, sharded)
    assert Ls == L and np.array_equal(gs, g)
    kill_a_worker(client, holding=sharded._futures)      # the loader runs again
    Ls, gs = gomaml.meta_loss_grad(theta, sharded)
    assert Ls == L and np.array_equal(gs, g)
    sharded.close()
    wait_for_workers(client, 2)


def test_from_loader_off_block_boundaries_is_exact_to_rounding(client, rng):
    tasks = make_tasks(rng, n=20, d=7, weighted=False)
    theta = rng.normal(size=7)
    L, g = gomaml.meta_loss_grad(theta, tasks)
    # 20 tasks are 20 blocks of one: cut them unevenly, with weights the loader gives
    with ShardedTasks.from_loader(client, _loader(tasks, [0, 3, 11, 20]), 3) as sharded:
        assert sharded.bit_identical and sharded.n_tasks == 20
        Ls, gs = gomaml.meta_loss_grad(theta, sharded)
        assert Ls == L and np.array_equal(gs, g)
    big = make_tasks(rng, n=200, d=4, weighted=False)        # 64 blocks: 3 | 197 is inside one
    theta = rng.normal(size=4)
    L, g = gomaml.meta_loss_grad(theta, big)
    with ShardedTasks.from_loader(client, _loader(big, [0, 4, 200]), 2) as sharded:
        assert not sharded.bit_identical
        Ls, gs = gomaml.meta_loss_grad(theta, sharded)
    np.testing.assert_allclose(Ls, L, rtol=1e-14)
    np.testing.assert_allclose(gs, g, rtol=1e-12, atol=1e-15 * np.abs(g).max())


def test_from_loader_combines_shard_weights_by_share(client, rng):
    tasks = make_tasks(rng, n=8, d=4, weighted=False)
    theta = rng.normal(size=4)

    def load(i):
        part = slice_tasks(tasks, 4 * i, 4 * i + 4)
        Xs, ys, s_ptr, Xq, yq, q_ptr = part.packed()
        return gomaml.Tasks.from_packed(Xs, ys, s_ptr, Xq, yq, q_ptr,
                                        weights=[1.0, 2.0, 3.0, 4.0])
    Xs, ys, s_ptr, Xq, yq, q_ptr = tasks.packed()
    w = np.array([1, 2, 3, 4, 1, 2, 3, 4], float)
    whole = gomaml.Tasks.from_packed(Xs, ys, s_ptr, Xq, yq, q_ptr, weights=w)
    with ShardedTasks.from_loader(client, load, 2) as sharded:
        np.testing.assert_allclose(sharded.weights, whole.weights, rtol=1e-15)
        np.testing.assert_allclose(gomaml.meta_loss(theta, sharded),
                                   gomaml.meta_loss(theta, whole), rtol=1e-14)


def test_bad_arguments_are_named(client, rng):
    tasks = make_tasks(rng, n=5, d=3)
    with pytest.raises(TypeError, match="client"):
        ShardedTasks(object(), tasks, 2)
    with pytest.raises(TypeError, match="tasks"):
        ShardedTasks(client, np.zeros((5, 3)), 2)
    with pytest.raises(ValueError, match="n_shards must be an int between 1 and 5"):
        ShardedTasks(client, tasks, 6)
    with pytest.raises(TypeError, match="n_shards"):
        ShardedTasks(client, tasks, 2.0)
    with pytest.raises(TypeError, match="loader"):
        ShardedTasks.from_loader(client, 3, 2)
    with pytest.raises(TypeError, match="must return a gomaml.Tasks"):
        ShardedTasks.from_loader(client, lambda i: np.zeros(3), 2)
    with ShardedTasks(client, tasks, 2) as sharded:
        with pytest.raises(ValueError, match="batch_size"):
            gomaml.fit(sharded, batch_size=2, max_iter=1)
        with pytest.raises(TypeError, match="meta_loss_grad, meta_loss and fit only"):
            gomaml.adapt(np.zeros(3), sharded)
        with pytest.raises(ValueError, match="theta"):
            gomaml.meta_loss_grad(np.zeros(4), sharded)


def test_each_worker_job_gets_its_share_of_the_cpus(client):
    from gomaml.distributed import worker_budget

    def budget():
        from gomaml._threads import resolve_n_threads
        return worker_budget(), resolve_n_threads(None)
    # --workers 2 on this machine: two single-threaded workers, one kernel thread each
    assert client.gather(client.submit(budget, pure=False)) == (1, 1)


# --- the study on a cluster -----------------------------------------------------------------

STUDY = dict(n_tasks=6, n_test_tasks=4, k_support=3, k_query=3, seeds=[0, 1],
             d=[8, 18, 36, 80, 160, 640, "inf"], max_iter=3000, time_budget=1e9,
             path_d=[8, 80])


def comparable(rows):
    """Rows keyed by key, without timings and host fields."""
    out = {}
    for r in rows:
        r = {k: v for k, v in r.items() if k not in TIMING_FIELDS and k != "provenance"}
        out[r["key"]] = r
    return out


def read_rows(folder):
    with open(os.path.join(folder, "rows.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def serial_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    run_study(STUDY, out=str(out), progress=False, make_plot=False, stream=open(os.devnull, "w"))
    return comparable(read_rows(out)), out


def test_study_rows_on_a_cluster_equal_the_serial_rows(client, serial_rows, tmp_path):
    run_study(STUDY, out=str(tmp_path), progress=False, make_plot=False,
              stream=open(os.devnull, "w"), client=client)
    rows = read_rows(tmp_path)
    assert comparable(rows) == serial_rows[0]
    assert len(rows) == len({r["key"] for r in rows}) == 14
    with open(tmp_path / "paths.jsonl") as f, open(serial_rows[1] / "paths.jsonl") as g:
        assert sorted(json.loads(x)["key"] for x in f) == \
            sorted(json.loads(x)["key"] for x in g)


def test_a_worker_killed_mid_study_leaves_every_row_once(client, serial_rows, tmp_path):
    jsonl = tmp_path / "rows.jsonl"
    seen = []

    def killer():
        while not (jsonl.exists() and jsonl.read_text().count("\n") >= 2):
            time.sleep(0.01)
        seen.append(jsonl.read_text().count("\n"))
        kill_a_worker(client)
    t = threading.Thread(target=killer, daemon=True)
    t.start()
    run_study(STUDY, out=str(tmp_path), progress=False, make_plot=False,
              stream=open(os.devnull, "w"), client=client)
    t.join(5)
    assert seen and seen[0] < 14            # killed part-way
    rows = read_rows(tmp_path)
    assert len(rows) == 14 and comparable(rows) == serial_rows[0]
    wait_for_workers(client, 2)


def test_a_killed_client_resumes_on_the_cluster(client, serial_rows, tmp_path):
    cfg = dict(STUDY, seeds=[0])
    run_study(dict(cfg, d=[8, 18, 36]), out=str(tmp_path), progress=False, make_plot=False,
              stream=open(os.devnull, "w"), client=client)
    first = read_rows(tmp_path)
    run_study(cfg, out=str(tmp_path), progress=False, make_plot=False,
              stream=open(os.devnull, "w"), client=client)
    rows = read_rows(tmp_path)
    assert rows[:3] == first and len(rows) == 7
    assert comparable(rows).items() <= serial_rows[0].items()


# --- the `dask` command: a scheduler and two workers on 127.0.0.1 ---------------------------

@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and two single-threaded `dask worker`s on 127.0.0.1, stopped (and
    killed if need be) at the end."""
    dask = [sys.executable, "-m", "dask"]
    file = tmp_path / "scheduler.json"
    procs = []
    log = open(tmp_path / "dask.log", "w")
    try:
        procs.append(subprocess.Popen(
            dask + ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(file)], stdout=log, stderr=log))
        deadline = time.time() + 60
        while not file.exists() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen(
                dask + ["worker", address, "--nthreads", "1", "--no-dashboard",
                        "--host", "127.0.0.1"], stdout=log, stderr=log))
        with distributed.Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs[::-1]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def test_cli_study_on_a_dask_scheduler_equals_the_serial_run(dask_cluster, tmp_path):
    args = ["--seeds", "0,1", "--d", "16,64,256,1024", "--no-plot", "--quiet"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    serial = subprocess.run([sys.executable, "-m", "gomaml", "study", "--out",
                             str(tmp_path / "serial"), *args], capture_output=True, text=True,
                            env=env, timeout=600)
    assert serial.returncode == 0, serial.stderr
    out = tmp_path / "cluster"
    proc = subprocess.Popen([sys.executable, "-m", "gomaml", "study", "--scheduler",
                             dask_cluster, "--out", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # kill one worker part-way: after the first row lands
    with distributed.Client(dask_cluster, timeout=60) as c:
        deadline = time.time() + 300
        while not ((out / "rows.jsonl").exists() and (out / "rows.jsonl").read_text()) \
                and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        killed_at = len(read_rows(out)) if (out / "rows.jsonl").exists() else 0
        kill_a_worker(c)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    rows = read_rows(out)
    assert killed_at < 8 and len(rows) == 8
    assert comparable(rows) == comparable(read_rows(tmp_path / "serial"))
    table = lambda text: [line.rsplit(None, 1)[0] for line in text.splitlines()[:5]]
    assert table(stdout) == table(serial.stdout)          # all but the time column
