"""The store on an object store (issue 13): a real S3-compatible server (moto's), started locally.

Nothing here contacts an outside host: the endpoint is a loopback port
(``AWS_ENDPOINT_URL``, which botocore -- and so s3fs -- honours), the
credentials are dummies and the instance-metadata lookup is off.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from .conftest import DEMO_CONFIG, ROOT, run_cli
from .test_distributed import _env

pytest.importorskip("s3fs")
pytest.importorskip("moto")

BUCKET = "vistsne-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _aws_env(endpoint: str) -> dict:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint, "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto's standalone server on a free loopback port, with one empty bucket."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **_aws_env(endpoint)})
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, "moto_server did not start"
                time.sleep(0.2)
        import boto3

        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_two_ranks_extract_into_s3_then_embed_render_ls_verify(s3_endpoint, tmp_path):
    url = f"s3://{BUCKET}/runs/store.zarr"
    env = _env(**_aws_env(s3_endpoint))
    sel = ["--max-num-class", "3", "--max-num-samples", "6"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "vistsne", "extract", DEMO_CONFIG, "--device", "cpu", "--launcher", "pytorch",
                           "--store", url, *sel, "--batch-size", "4", "--flush-rows", "4"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "18 rows (18 new rows computed, 0 cached)" in proc.stdout and "2 ranks" in proc.stdout
    again = run_cli("extract", DEMO_CONFIG, "--device", "cpu", "--store", url, *sel, "--json", env=env)
    assert json.loads(again.stdout)["cached"] is True
    emb = run_cli("-q", "embed", "--store", url, "--stage", "pre_logits", "--perplexity", "3", "--n-iter", "250",
                  "--json", env=env)
    assert emb.returncode == 0
    out = tmp_path / "figs"
    ren = run_cli("-q", "render", "--store", url, "--out", out, "--format", "png,html", env=env)
    assert ren.returncode == 0 and list(out.glob("*.png")) and list(out.glob("*.html")), ren.stdout
    ls = run_cli("store", "ls", "--store", url, "--json", env=env)
    assert "digits_resnet18" in ls.stdout and "18" in ls.stdout
    ver = run_cli("store", "verify", "--deep", "--store", url, env=env, check=False)
    assert ver.returncode == 0, ver.stdout + ver.stderr


def test_an_unreachable_store_fails_with_one_line_before_any_model(tmp_path):
    env = _env(**_aws_env(f"http://127.0.0.1:{_free_port()}"))  # nothing listens there
    t0 = time.time()
    r = run_cli("extract", DEMO_CONFIG, "--device", "cpu", "--store", f"s3://{BUCKET}/x.zarr", env=env,
                check=False, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be reached" in lines[0] and "AWS_ENDPOINT_URL" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and "extracting" not in r.stderr
    assert time.time() - t0 < 120



_OPEN_CODE = """
import os, sys, time
from vistsne.store import Store
open(sys.argv[2] + ".ready." + str(os.getpid()), "w").close()
while not os.path.exists(sys.argv[2]):  # every process opens at (about) the same moment
    time.sleep(0.001)
time.sleep(float(sys.argv[3]))  # staggered by a few object-store round trips
Store(sys.argv[1])
"""


@pytest.mark.slow
def test_processes_creating_one_s3_store_at_once_all_open_it(s3_endpoint, tmp_path):
    """The ranks of one job create the store on the object store at the same moment: none may
    call it foreign (one saw the other's objects before its root zarr.json could be read)."""
    from vistsne.store import Store

    env = {**os.environ, **_aws_env(s3_endpoint)}
    for i, step in enumerate((0.0, 0.005, 0.02)):
        url = f"s3://{BUCKET}/race/s{i}.zarr"
        go = tmp_path / f"go{i}"
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_CODE, url, str(go), str(j * step)], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for j in range(4)]
        deadline = time.time() + 120
        while len(list(tmp_path.glob(f"go{i}.ready.*"))) < 4 and time.time() < deadline:
            time.sleep(0.05)
        go.touch()
        errs = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], (i, [e[-400:] for e in errs if e])
        os.environ.update(_aws_env(s3_endpoint))
        Store(url, mode="r")  # and it is a vistsne store
