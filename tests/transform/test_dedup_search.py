"""Dedup's candidate search: the Dask path (one task per block, each worker building the index once)
finds exactly the local candidates and frees the workers' index when it ends; each pair comes at its
closest window hits; heavy buckets are capped at the closest candidates and the cap is reported; the
index finds exactly the pairs within the threshold."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transform.dedup_match import thumbnails
from transform.dedup_search import candidates, candidates_touching
from transform.hamming import HammingIndex, brute_force_pairs, plan_chunks, plan_for


def scenes(n: int, seed: int, side: int = 32) -> np.ndarray:
    """Smooth random scenes (as benchmarks/scale.py draws them), every fifth one a shifted copy."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        if k % 5 == 4:
            out.append(np.roll(out[-1], 2, axis=1))
            continue
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        im = np.asarray(Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC), np.float32)
        out.append(np.clip(im + rng.normal(0, 6, im.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def test_index_finds_exactly_the_pairs_within_the_threshold():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 2**63, 3000, dtype=np.int64)
    codes[1500:] = codes[:1500] ^ rng.integers(0, 2**9, 1500)
    wi, wj, _ = HammingIndex(codes, 9).query(codes)
    bi, bj = brute_force_pairs(codes, 9)
    assert {(a, b) for a, b in zip(wi.tolist(), wj.tolist()) if a < b} == set(zip(bi.tolist(), bj.tolist()))


def test_plan_is_priced_on_measured_occupancy():
    rng = np.random.default_rng(1)
    uniform = rng.integers(0, 2**63, 50_000, dtype=np.int64)
    few = rng.integers(0, 2**63, 20, dtype=np.int64)[rng.integers(0, 20, 50_000)]  # 20 distinct codes
    m, r = plan_for(few, 10)
    assert m * (r + 1) > 10  # still exact (pigeonhole)
    assert plan_for(uniform, 10) == plan_chunks(50_000, 10)  # uniform codes price as the uniform model
    assert (m, r) != plan_for(uniform, 10)  # every bucket heavy: the plan changes (fewer probes)


def test_dask_search_equals_local_search(monkeypatch):
    from distributed import Client, LocalCluster, get_task_stream

    from transform import dedup_codes

    thumbs = thumbnails(scenes(600, seed=2))
    local_stats, dask_stats = {}, {}
    local = candidates(thumbs, 10, 256, block=128, stats=local_stats)
    monkeypatch.setattr(dedup_codes, "CODES_SHARE", 70)  # window codes in tasks of at most 70 images
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            remote = candidates(thumbs, 10, 256, block=128, stats=dask_stats, client=client)
        held = client.run(lambda: len(__import__("transform.dedup_search", fromlist=["_INDEX"])._INDEX))
    assert held and set(held.values()) == {0}  # no worker keeps the index after the search
    assert len([t for t in stream.data if "window_codes" in str(t["key"])]) == -(-600 // 70)
    assert all(np.array_equal(a, b) for a, b in zip(local, remote))
    assert dask_stats["search_tasks"] == 5 and dask_stats["window_hits"] == local_stats["window_hits"]
    pairs = set(zip(np.minimum(local[0], local[1]).tolist(), np.maximum(local[0], local[1]).tolist()))
    assert all((k - 1, k) in pairs for k in range(4, 600, 5))  # every shifted copy is a candidate


def test_search_touching_new_images_equals_the_full_search_restricted_to_them():
    thumbs = thumbnails(scenes(1500, seed=3))
    full = candidates(thumbs, 10, block=256)
    new = np.sort(np.random.default_rng(0).choice(len(thumbs), 150, replace=False))
    fresh = np.isin(np.arange(len(thumbs)), new)
    keep = fresh[full[0]] | fresh[full[1]]
    stats, progress = {}, []
    touching = candidates_touching(thumbs, new, 10, block=64, stats=stats, on_progress=progress.append)
    assert sum(progress) == len(new) and len(progress) > 2  # images searched, reported as they go
    as_set = lambda a, b, w, r: {(min(x, y), max(x, y), x, v, u) for x, y, v, u in zip(a, b, w, r)}
    assert as_set(*touching) == as_set(*(c[keep] for c in full))  # the same pairs, aligned the same way
    assert keep.sum() >= 60 and not (~fresh[touching[0]] & ~fresh[touching[1]]).any()
    assert stats["window_hits"] > 0
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote_stats = {}
        remote = candidates_touching(thumbs, new, 10, block=64, stats=remote_stats, client=client)
    assert all(np.array_equal(a, b) for a, b in zip(touching, remote))  # the same, in the same order
    assert remote_stats["search_tasks"] > 0 and remote_stats["window_hits"] == stats["window_hits"]


@pytest.mark.parametrize("cap", [3, 1000])
def test_heavy_bucket_is_capped_at_the_closest_and_reported(cap):
    """120 nearly identical images (one scene, faint noise: their hashes all agree) + 60 distinct ones."""
    rng = np.random.default_rng(3)
    base = scenes(1, seed=4)[0].astype(np.float32)
    same = np.clip(base[None] + rng.normal(0, 1.5, (120, *base.shape)), 0, 255).astype(np.uint8)
    images = np.concatenate([same, scenes(60, seed=5)])
    stats = {}
    a, b, _, _ = candidates(thumbnails(images), 10, cap, block=50, stats=stats)
    inside = (a < 120) & (b < 120)
    pairs = len({(min(x, y), max(x, y)) for x, y in zip(a[inside], b[inside])})  # a pair comes at up to ALIGNMENTS alignments
    if cap == 1000:
        assert stats["capped_images"] == 0 and pairs == 120 * 119 // 2  # all pairs, uncapped
    else:
        assert stats["capped_images"] >= 100 and stats["capped_pairs_dropped"] > 0
        assert pairs <= 2 * cap * 120  # bounded: linear in the images, not quadratic
        from transform.dedup_groups import components

        comp = components(len(images), a[inside], b[inside])
        assert len(set(comp[:120].tolist())) <= 3  # the closest candidates still tie the heavy group together


def test_search_among_some_images_equals_the_full_search_restricted_to_them():
    """near_edges searches only the images with detail (``among``): the pairs, scores and geometry of the
    full search whose two images are both among them, in a full and in an incremental search."""
    from transform.dedup_check import match
    from transform.dedup_search import candidate_buckets

    px = scenes(300, seed=6)
    thumbs, plain = thumbnails(px), thumbnails(px, equalise=False)
    among = np.flatnonzero(np.arange(len(px)) % 3 != 0)
    inside = np.zeros(len(px), bool)
    inside[among] = True
    full = match(thumbs, 10, plain=plain)
    got = match(thumbs, 10, plain=plain, among=among)
    mine = inside[full[0]] & inside[full[1]]
    assert mine.any() and (~mine).any() and len(got[0]) == int(mine.sum())
    assert all(np.array_equal(g, f[mine]) for g, f in zip(got, full))
    new = among[among > 200]
    whole = [np.concatenate(c) for c in zip(*candidate_buckets(thumbs, 10, new=np.arange(200, 300)))]
    part = [np.concatenate(c) for c in zip(*candidate_buckets(thumbs, 10, new=new, among=among))]
    mine = inside[whole[0]] & inside[whole[1]]
    assert len(part[0]) == int(mine.sum()) > 0
    assert all(np.array_equal(p, w[mine]) for p, w in zip(part, whole))


def test_mirrored_copies_are_candidates_when_asked_and_a_batch_finds_the_same():
    """With ``mirrored`` every image is also probed by its mirror image's windows: each mirrored copy is a
    candidate (``ref`` of MIRRORED_WINDOWS), the as-is candidates are unchanged, and the incremental
    search finds exactly the full search's candidates that touch the new images."""
    from transform.dedup_match import INDEX_WINDOWS

    px = scenes(600, seed=7)
    px[7::10] = px[6::10][:, :, ::-1]  # every tenth image: the one before it, flipped left to right
    thumbs = thumbnails(px)
    as_is = candidates(thumbs, 10, block=128)
    both = candidates(thumbs, 10, block=128, mirrored=True)
    flipped = both[3] >= len(INDEX_WINDOWS)
    as_set = lambda a, b, w, r: {(min(x, y), max(x, y), x, v, u) for x, y, v, u in zip(a, b, w, r)}
    assert as_set(*(c[~flipped] for c in both)) == as_set(*as_is)
    mirrored_pairs = {(min(x, y), max(x, y)) for x, y in zip(both[0][flipped].tolist(), both[1][flipped].tolist())}
    assert all((k - 1, k) in mirrored_pairs for k in range(7, 600, 10))
    plain_pairs = {(min(x, y), max(x, y)) for x, y in zip(as_is[0].tolist(), as_is[1].tolist())}
    assert not any((k - 1, k) in plain_pairs for k in range(7, 600, 10))  # not found as they are
    new = np.sort(np.random.default_rng(1).choice(len(thumbs), 60, replace=False))
    fresh = np.isin(np.arange(len(thumbs)), new)
    touching = candidates_touching(thumbs, new, 10, block=32, mirrored=True)
    assert as_set(*touching) == as_set(*(c[fresh[both[0]] | fresh[both[1]]] for c in both))


def test_each_pair_comes_at_its_closest_window_hits():
    """A pair and side is verified at up to ALIGNMENTS alignments: exactly its closest window hits (against
    every window pair compared by brute force), each once, also from an incremental run's two searches."""
    from transform.dedup_match import WINDOWS, probe_windows, window_codes
    from transform.dedup_search import ALIGNMENTS

    thumbs = thumbnails(scenes(240, seed=8))
    q, p = (window_codes(thumbs, w).view(np.uint64) for w in (WINDOWS, probe_windows(True)))
    expected: dict = {}
    for by in range(len(thumbs)):
        d = np.bitwise_count(p[by][:, None, None] ^ q[None])  # (probe window, image, query window)
        for w, to, v in zip(*np.nonzero(d <= 10)):
            if to != by:
                expected.setdefault((min(by, to), max(by, to), int(w >= 4)), []).append(int(d[w, to, v]))
    found: dict = {}
    for a, b, w, r in zip(*candidates(thumbs, 10, block=64, mirrored=True)):
        found.setdefault((min(a, b), max(a, b), int(r >= 4)), []).append((a, w, r, int(np.bitwise_count(q[a, w] ^ p[b, r]))))
    assert found.keys() == expected.keys() and any(len(v) > 1 for v in found.values())
    for key, rows in found.items():
        assert len(set(rows)) == len(rows)  # distinct alignments
        assert [d for *_, d in rows] == sorted(expected[key])[:ALIGNMENTS]  # the closest, closest first
    new = np.arange(0, len(thumbs), 3)
    touching = candidates_touching(thumbs, new, 10, block=64, mirrored=True)
    as_set = lambda a, b, w, r: {(min(x, y), max(x, y), x, v, u) for x, y, v, u in zip(a, b, w, r)}
    both = [c for c in candidates(thumbs, 10, block=64, mirrored=True)]
    keep = np.isin(both[0], new) | np.isin(both[1], new)
    assert as_set(*touching) == as_set(*(c[keep] for c in both))
