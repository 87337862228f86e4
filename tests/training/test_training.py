"""DeepChrome, the stacked ensemble, the chunk loader and the trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
import zarr
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

import chromestore
from chromestore.store import write_region
from chromestore.training import registry
from chromestore.training.loader import ChunkLoader
from chromestore.training.models import (
    DeepChrome,
    StackedDeepChrome,
    flops_per_sample,
    pool_relu,
)
from chromestore.training.trainer import (
    MaskedAdam,
    TrainConfig,
    fit_group,
    pick_mode,
    resolve_device,
    train,
)

CHUNK = 64


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory) -> str:
    """3 simulated epigenomes × 320 real genes, 64-gene chunks (5 per cell)."""
    path = tmp_path_factory.mktemp("sim") / "sim.zarr"
    chromestore.simulate(path, cells=3, genes=320, seed=0, gene_chunk=CHUNK)
    return str(path)


def test_deepchrome__layer_shapes_and_parameter_count_match_the_paper():
    m = DeepChrome()
    shapes = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert shapes == {
        "conv.weight": (50, 5, 10),
        "conv.bias": (50,),
        "fc1.weight": (625, 900),
        "fc1.bias": (625,),
        "fc2.weight": (125, 625),
        "fc2.bias": (125,),
        "fc3.weight": (2, 125),
        "fc3.bias": (2,),
    }
    assert sum(p.numel() for p in m.parameters()) == 644_177  # 2,550 + 563,125 + 78,250 + 252
    assert m(torch.zeros(7, 5, 100)).shape == (7, 2)
    assert m.dropout.p == 0.5 and m.pool.kernel_size == 5
    # conv 91·50·50 + dense 900·625 + 625·125 + 125·2 multiply-adds, ×2
    assert flops_per_sample() == 2 * (91 * 50 * 50 + 900 * 625 + 625 * 125 + 125 * 2)
    assert registry.get("deepchrome").factory is DeepChrome


def test_pool_relu__same_values_and_gradients_as_the_papers_relu_then_pool_bit_for_bit():
    """DeepChrome is ReLU → MaxPool(5); the models pool first (faster): nothing changes,
    not even where a window's maximum is tied (stretches without reads give equal
    convolution outputs) or not positive."""
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(5, 50, 10)
    x = torch.zeros(64, 5, 100)
    x[:16, :, 40:60] = 1.0  # ties inside windows, positive and negative
    x[16:32] = torch.randint(0, 3, (16, 5, 100)).float()  # small counts: many ties
    x[32:] = torch.rand(32, 5, 100) * 10
    weight = torch.randn(64, 900)

    def stacked_before(h):  # the stacked ensemble's form, ReLU first and last
        return F.relu(h)[..., :90].unflatten(-1, (18, 5)).amax(-1)

    def stacked_after(h):
        return F.relu(h[..., :90].unflatten(-1, (18, 5)).amax(-1))

    grads, outs = [], []
    for f in (lambda h: F.max_pool1d(F.relu(h), 5), pool_relu, stacked_before, stacked_after):
        conv.zero_grad()
        out = f(conv(x)).flatten(1)
        (out * weight).sum().backward()
        outs.append(out.detach())
        grads.append([conv.weight.grad.clone(), conv.bias.grad.clone()])
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    assert (outs[0] == 0).any() and (outs[0] > 0).any()
    assert all(torch.equal(a, b) for a, b in zip(grads[0], grads[1], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(grads[2], grads[3], strict=True))
    with torch.no_grad():  # evaluation takes the max without indices: the same values
        assert torch.equal(pool_relu(conv(x)).flatten(1), outs[0])


def test_stacked__forward_equals_each_model():
    torch.manual_seed(0)
    models = [DeepChrome().eval() for _ in range(3)]
    x = torch.rand(3, 8, 5, 100) * 10
    stacked = StackedDeepChrome.from_models(models)
    ref = torch.stack([m(x[i]) for i, m in enumerate(models)])
    torch.testing.assert_close(stacked(x), ref, rtol=1e-5, atol=1e-5)


def test_stacked__same_parameters_as_per_model_adam_after_steps():
    torch.manual_seed(1)
    models = [DeepChrome(dropout=0.0) for _ in range(3)]
    stacked = StackedDeepChrome.from_models(models)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    adam = MaskedAdam(list(stacked.parameters()), 1e-3, 3)
    gen = torch.Generator().manual_seed(0)
    # step 2 leaves model 1 out: it must keep its parameters and Adam state
    actives = [[True, True, True], [True, False, True], [True, True, True], [True, True, True]]
    for act in actives:
        x = torch.rand(3, 16, 5, 100, generator=gen) * 5
        y = torch.randint(0, 2, (3, 16), generator=gen)
        for i, m in enumerate(models):
            if act[i]:
                opts[i].zero_grad()
                F.cross_entropy(m(x[i]), y[i]).backward()
                opts[i].step()
        a = torch.tensor(act)
        logits = stacked(x)
        per = F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1), reduction="none").view(3, 16)
        (per.mean(1) * a).sum().backward()
        adam.step(a)
    for i, m in enumerate(models):
        got = stacked.state_dict_of(i)
        for name, p in m.state_dict().items():
            # Adam divides by sqrt(v): float-rounding in near-zero gradients shows up as
            # at most a few % of one lr=1e-3 step; parameters move by ~4 steps here
            torch.testing.assert_close(got[name], p, rtol=1e-3, atol=5e-5)
    # and they really moved away from the start
    assert not torch.allclose(models[0].fc1.weight, DeepChrome(dropout=0.0).fc1.weight)


def test_masked_adam__fused_kernel_and_elementwise_form_take_the_same_steps():
    torch.manual_seed(2)
    shapes = [(4, 6, 3), (4, 6)]
    start = [torch.randn(s) for s in shapes]
    runs = []
    for fused in (True, False):
        params = [p.clone().requires_grad_() for p in start]
        adam = MaskedAdam(params, 1e-2, 4)
        assert adam.fused  # torch >= 2.4 has the CPU kernel
        adam.fused = fused
        gen = torch.Generator().manual_seed(0)
        for act in ([1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 1]):
            for p in params:
                p.grad = torch.randn(p.shape, generator=gen)
            adam.step(torch.tensor(act, dtype=torch.bool))
        runs.append([p.detach() for p in params])
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # models 1-3 were left out of some steps, model 0 of none
    assert not torch.allclose(runs[0][0][0], start[0][0])
    assert adam.t.tolist() == [3.0, 2.0, 2.0, 2.0]


class CountingStore(zarr.storage.WrapperStore):
    """Counts the chunk keys read through it."""

    def __init__(self, store):
        super().__init__(store)
        self.keys: list[str] = []

    async def get(self, key, prototype, byte_range=None):
        self.keys.append(key)
        return await self._store.get(key, prototype, byte_range)


def test_loader__reads_only_its_cells_chunks(sim_store):
    counting = CountingStore(zarr.storage.LocalStore(sim_store, read_only=True))
    loader = ChunkLoader(sim_store, ["E004"], split="random", memory_budget=0, zarr_store=counting)
    signal_reads = [k for k in counting.keys if k.startswith("signal/c/")]
    # the scan for missing signal: exactly the 5 chunks of cell 1 (E004), once each
    assert sorted(signal_reads) == [f"signal/c/1/{j}/0/0" for j in range(5)]
    counting.keys.clear()
    batches = list(loader.train_batches(epoch=0, batch_size=32))
    signal_reads = [k for k in counting.keys if k.startswith("signal/c/")]
    assert sorted(signal_reads) == [f"signal/c/1/{j}/0/0" for j in range(5)]
    assert loader.chunk_reads == 10
    n = sum(int((b.weight > 0).sum()) for b in batches)
    assert n == loader.n_train()[0] > 0
    # each gene's rows are its own signal (transform raw)
    ds = chromestore.open_store(sim_store)
    gene = loader.indices(0, 2)[:3]
    ev = next(iter(loader.eval_batches([2], 3)))
    ref = ds.signal.isel(cell=1, gene=ev.gene[0]).values
    np.testing.assert_array_equal(ev.x[0], ref)
    assert set(ev.gene[0]) <= set(loader.indices(0, 2)) and len(gene) == 3


def test_loader__caches_within_budget(sim_store):
    loader = ChunkLoader(sim_store, ["E003", "E005"], split="random")
    for epoch in range(2):
        list(loader.train_batches(epoch, 16))
    assert loader.chunk_reads == 10  # 2 cells × 5 chunks, read once by the scan


def test_loader__serving_some_models_gives_them_the_batches_they_get_among_all(sim_store):
    loader = ChunkLoader(sim_store, ["E003", "E004", "E005"], split="random")
    only = np.array([False, True, False])

    def rows(batches, m):
        return [(b.x[m][b.weight[m] > 0], b.y[m][b.weight[m] > 0]) for b in batches if b.active[m]]

    every = list(loader.train_batches(epoch=1, batch_size=32))
    some = list(loader.train_batches(epoch=1, batch_size=32, models=only))
    assert not any(b.active[[0, 2]].any() for b in some)  # the others get nothing
    assert all(not b.x[[0, 2]].any() for b in some)
    mine, theirs = rows(some, 1), rows(every, 1)
    assert len(mine) == len(theirs) == -(-loader.n_train()[1] // 32)
    for (x, y), (x2, y2) in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    ev = list(loader.eval_batches([1], 64, models=only))
    assert (np.concatenate([b.gene[[0, 2]].ravel() for b in ev]) == -1).all()
    served = np.concatenate([b.gene[1] for b in ev])
    np.testing.assert_array_equal(np.sort(served[served >= 0]), loader.indices(1, 1))


def test_fit_group__a_model_stopped_early_in_a_group_is_the_model_trained_alone(
    sim_store, monkeypatch
):
    """Stopped models are neither served nor validated; the others are not changed by it."""
    cells = ["E003", "E004", "E005"]
    cfg = TrainConfig(split="random", epochs=12, batch_size=32, patience=2, steps="per-model")
    served = {"train": [], "valid": []}
    train_stream, eval_stream = ChunkLoader._train_stream, ChunkLoader._eval_stream

    def spy_train(self, epoch, batch_size, models=None):
        served["train"].append(self._selected(models).copy())
        return train_stream(self, epoch, batch_size, models)

    def spy_eval(self, codes, batch_size, labelled, models=None):
        if tuple(codes) == (1,):  # the validation of an epoch
            served["valid"].append(self._selected(models).copy())
        return eval_stream(self, codes, batch_size, labelled, models)

    monkeypatch.setattr(ChunkLoader, "_train_stream", spy_train)
    monkeypatch.setattr(ChunkLoader, "_eval_stream", spy_eval)
    group = fit_group(sim_store, cells, cfg)
    monkeypatch.undo()
    ran = np.isfinite(group["history_valid_auc"]).sum(axis=1)
    assert len(set(ran)) > 1 and ran.min() < 12  # they stopped at different epochs
    # each model was served and validated in exactly the epochs it ran
    for kind in ("train", "valid"):
        np.testing.assert_array_equal(np.sum(served[kind], axis=0), ran)
    for m, cell in enumerate(cells):
        alone = fit_group(sim_store, [cell], cfg)
        np.testing.assert_array_equal(group["history_valid_auc"][m], alone["history_valid_auc"][0])
        np.testing.assert_array_equal(group["history_loss"][m], alone["history_loss"][0])
        np.testing.assert_array_equal(group["prediction"][m], alone["prediction"][0])
        assert group["best_epoch"][m] == alone["best_epoch"][0]


def test_loader__missing_signal_genes_excluded_and_reported(tmp_path):
    path = tmp_path / "s.zarr"
    chromestore.simulate(path, cells=2, genes=128, seed=1, gene_chunk=CHUNK)
    ds = chromestore.open_store(path)
    block = ds[["signal"]].isel(cell=slice(0, 1), gene=slice(0, CHUNK)).load()
    block["signal"][0, [3, 10, 11], 2, 5] = np.nan
    write_region(path, block, {"cell": slice(0, 1), "gene": slice(0, CHUNK)})
    loader = ChunkLoader(path, ["E003", "E004"], split="random")
    assert loader.exclusion_report() == {"E003": 3, "E004": 0}
    assert list(np.flatnonzero(loader.excluded[0])) == [3, 10, 11]
    for m in range(len(loader.models)):
        for code in (0, 1, 2):
            assert not loader.excluded[m, loader.indices(m, code, labelled=False)].any()
    seen = np.concatenate([np.flatnonzero(b.weight[0] > 0) for b in loader.train_batches(0, 8)])
    assert len(seen) == len(loader.indices(0, 0))
    ev = np.concatenate([b.gene[0][b.gene[0] >= 0] for b in loader.eval_batches([0, 1, 2], 8)])
    assert not set(ev) & {3, 10, 11}


def test_fit_group__resume_after_interruption_gives_the_same_model(sim_store):
    cfg = TrainConfig(split="random", epochs=3, batch_size=32, patience=None)
    whole = fit_group(sim_store, ["E003"], cfg, run="whole")
    part = fit_group(sim_store, ["E003"], cfg, run="cut", stop_after=1)
    assert part["epochs_run"] == 1 and not part["finished"]
    assert np.isnan(part["history_loss"][0, 1:]).all()
    from chromestore.store import Store
    from chromestore.training import weights as W

    to = Store.of(f"{sim_store}.cut-weights")
    resumed = fit_group(sim_store, ["E003"], cfg, run="cut", weights_to=to)
    assert resumed["epochs_run"] == 3 and resumed["finished"]
    np.testing.assert_allclose(resumed["history_loss"], whole["history_loss"], rtol=1e-5)
    np.testing.assert_allclose(resumed["prediction"], whole["prediction"], rtol=1e-4, atol=1e-6)
    w = W.loads(W.read_bytes(to.child("deepchrome/E003/0.safetensors")))
    assert w["best_epoch"] == int(resumed["best_epoch"][0])
    model = DeepChrome()
    model.load_state_dict(w["state_dict"])


def test_train__writes_run_and_group_membership_does_not_change_a_model(sim_store):
    cfg = TrainConfig(split="random", epochs=2, batch_size=32)
    run = train(sim_store, "both", "E003,E005", cfg, mode="stacked", device="cpu", progress=False)
    alone = fit_group(sim_store, ["E005"], cfg)
    np.testing.assert_allclose(
        run.prediction.sel(model="deepchrome", cell="E005", repeat=0).values,
        alone["prediction"][0],
        rtol=1e-4,
        atol=1e-5,
    )
    assert (
        run.attrs["mode"] == "stacked" and run.attrs["models"]["deepchrome"]["transform"] == "raw"
    )
    split = run.split.values[0]
    pred = run.prediction.values[0, :, 0]
    assert np.isnan(pred[:, split == 0]).all() and not np.isnan(pred[:, split == 2]).any()
    assert (run.best_epoch.values >= 0).all()
    assert np.isnan(run.history_valid_auc.values).sum() == 0  # 2 epochs run, none early-stopped


def test_train__cuda_without_gpu_is_a_clear_error(sim_store):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        train(
            sim_store,
            "x",
            "E003",
            TrainConfig(epochs=1),
            mode="stacked",
            device="cuda",
            progress=False,
        )


@pytest.mark.cluster
def test_distributed__two_worker_cluster_matches_stacked(sim_store):
    from chromestore.app.cluster import connect

    cfg = TrainConfig(split="random", epochs=3, batch_size=32)
    stacked = train(sim_store, "st", "E003,E004", cfg, mode="stacked", device="cpu", progress=False)
    with connect(workers=2, quiet=True) as client:
        dist = train(
            sim_store,
            "di",
            "E003,E004",
            cfg,
            mode="distributed",
            device="cpu",
            progress=False,
            client=client,
        )
        assert len(client.scheduler_info()["workers"]) == 2
    assert dist.attrs["mode"] == "distributed"
    for cell in ("E003", "E004"):
        aucs = []
        for run in (stacked, dist):
            y = run.target.sel(cell=cell).values
            p = run.prediction.sel(model="deepchrome", cell=cell, repeat=0).values
            k = (run.split.values[0] == 2) & ~np.isnan(y)
            aucs.append(roc_auc_score(y[k], p[k]))
        assert abs(aucs[0] - aucs[1]) < 0.005, (cell, aucs)
        assert aucs[0] > 0.6


def test_e003__deepchrome_test_auc_at_least_0_80(e003_store):
    cfg = TrainConfig(
        split="random", seed=0, epochs=60, patience=15, batch_size=64, split_over="signal"
    )
    run = train(str(e003_store), "e003", "E003", cfg, mode="stacked", device="cpu", progress=False)
    excluded = run.excluded.sel(cell="E003").values
    assert (~excluded).sum() == 600
    split = run.split.values[0]
    assert [int(((split == c) & ~excluded).sum()) for c in (0, 1, 2)] == [200, 200, 200]
    y = run.target.sel(cell="E003").values
    p = run.prediction.sel(model="deepchrome", cell="E003", repeat=0).values
    k = (split == 2) & ~excluded & ~np.isnan(y)
    auc = roc_auc_score(y[k], p[k])
    print(f"E003 DeepChrome test AUC {auc:.4f} (best epoch {int(run.best_epoch.values.item())})")
    assert auc >= 0.80
    assert isinstance(run, xr.Dataset)


def _test_aucs(result: dict, cells) -> np.ndarray:
    """Each model's test AUROC from a fit_group result."""
    out = []
    for m, (cell, r) in enumerate(result["models"]):
        y = result["target"][list(cells).index(cell)]
        k = (result["split"][r] == 2) & ~np.isnan(y)
        out.append(roc_auc_score(y[k], result["prediction"][m, k]))
    return np.array(out)


def test_fit_group__per_model_steps_train_the_same_models_as_stacked_steps(sim_store):
    cells = ["E003", "E004"]
    runs = {
        steps: fit_group(
            sim_store, cells, TrainConfig(split="random", epochs=3, batch_size=32, steps=steps)
        )
        for steps in ("stacked", "per-model")
    }
    a, b = runs["stacked"], runs["per-model"]
    np.testing.assert_allclose(a["history_loss"], b["history_loss"], rtol=1e-3)
    np.testing.assert_allclose(a["prediction"], b["prediction"], atol=1e-3)
    np.testing.assert_allclose(_test_aucs(a, cells), _test_aucs(b, cells), atol=0.005)
    assert set(b["timings"]) >= {"load", "train steps", "validation", "prediction"}


def test_fit_group__bf16_autocast_keeps_test_auroc_within_0_02(sim_store):
    cells = ["E003", "E004", "E005"]
    aucs = {
        p: _test_aucs(
            fit_group(
                sim_store, cells, TrainConfig(split="random", epochs=4, batch_size=32, precision=p)
            ),
            cells,
        )
        for p in ("fp32", "bf16")
    }
    assert aucs["fp32"].mean() > 0.6
    assert abs(aucs["bf16"].mean() - aucs["fp32"].mean()) <= 0.02, aucs


def test_train_config__bf16_changes_the_checkpoint_key_and_steps_do_not():
    base = TrainConfig()
    assert TrainConfig(precision="bf16").key() != base.key()
    assert TrainConfig(steps="stacked").key() == TrainConfig(steps="per-model").key() == base.key()
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        TrainConfig(precision="fp16")


def test_pick_mode__auto_is_the_documented_rule(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_mode("stacked", "auto")[0] == "stacked"
    assert pick_mode("auto", "cpu", cluster=True)[0] == "distributed"
    assert pick_mode("auto", "cpu", local_pool=True, cores=2)[0] == "percore"
    assert pick_mode("auto", "cpu", local_pool=True, cores=1)[0] == "loop"
    assert pick_mode("auto", "auto", local_pool=False, cores=8)[0] == "loop"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_mode("auto", "auto", cluster=True, local_pool=True)[0] == "stacked"


def test_fit_group__short_finished_run_leaves_no_checkpoint_and_a_stopped_one_does(sim_store):
    from chromestore import runs as R
    from chromestore.training import weights as W
    from chromestore.training.ensemble import checkpoint_tag

    cfg = TrainConfig(split="random", epochs=2, batch_size=32)
    fit_group(sim_store, ["E004"], cfg, run="short")
    fit_group(sim_store, ["E004"], cfg, run="stopped", stop_after=1)
    tag = checkpoint_tag(["E004"])
    assert W.read_bytes(R.checkpoint_store(sim_store, "short", "deepchrome", tag)) is None
    assert W.read_bytes(R.checkpoint_store(sim_store, "stopped", "deepchrome", tag)) is not None


def test_train__loop_mode_writes_the_same_run_as_stacked(sim_store):
    cfg = TrainConfig(split="random", epochs=2, batch_size=32)
    runs = [
        train(sim_store, f"m-{mode}", "E003,E005", cfg, mode=mode, device="cpu", progress=False)
        for mode in ("stacked", "loop")
    ]
    assert [r.attrs["mode"] for r in runs] == ["stacked", "loop"]
    np.testing.assert_allclose(runs[0].prediction.values, runs[1].prediction.values, atol=1e-3)


def test_pool__groups_are_contiguous_and_near_equal():
    from chromestore.training.pool import groups

    cells = [f"E{i:03d}" for i in range(7)]
    parts = groups(cells, 2)
    assert parts == [cells[:4], cells[4:]]
    assert groups(cells[:1], 4) == [cells[:1]]


def test_pool__guided_groups_cover_the_cells_in_order_and_shrink_to_one():
    from chromestore.training.pool import guided_groups

    cells = [f"E{i:03d}" for i in range(56)]
    parts = guided_groups(cells, 2)
    assert [c for g in parts for c in g] == cells
    sizes = [len(g) for g in parts]
    assert sizes[0] == 14 and sizes == sorted(sizes, reverse=True) and sizes[-1] == 1
    assert guided_groups(cells, 1) == [cells]
    assert guided_groups(cells[:3], 8) == [[c] for c in cells[:3]]


@pytest.mark.gpu
def test_gpu__stacked_on_cuda_trains_the_models_that_per_model_cpu_steps_train(sim_store):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cells = ["E003", "E004"]
    cfg = TrainConfig(split="random", epochs=3, batch_size=32)
    gpu = fit_group(sim_store, cells, cfg, device="cuda")
    cpu = fit_group(sim_store, cells, cfg, device="cpu")
    assert gpu["device"].startswith("cuda")
    np.testing.assert_allclose(gpu["history_loss"], cpu["history_loss"], rtol=1e-2)
    np.testing.assert_allclose(_test_aucs(gpu, cells), _test_aucs(cpu, cells), atol=0.01)


@pytest.mark.gpu
def test_gpu__bf16_on_cuda_keeps_test_auroc_within_0_02(sim_store):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    cells = ["E003", "E004", "E005"]
    aucs = [
        _test_aucs(
            fit_group(
                sim_store,
                cells,
                TrainConfig(split="random", epochs=4, batch_size=32, precision=p),
                device="cuda",
            ),
            cells,
        ).mean()
        for p in ("fp32", "bf16")
    ]
    assert abs(aucs[0] - aucs[1]) <= 0.02, aucs


def test_fit_group__checkpoint_of_other_settings_is_refused_with_a_message(sim_store):
    cfg = TrainConfig(split="random", epochs=3, batch_size=32, patience=None)
    fit_group(sim_store, ["E003"], cfg, run="fingerprint", stop_after=1)
    other = TrainConfig(split="random", epochs=3, batch_size=32, patience=None, lr=cfg.lr * 2)
    with pytest.raises(ValueError, match="checkpoint .* was written with other settings"):
        fit_group(sim_store, ["E003"], other, run="fingerprint")
