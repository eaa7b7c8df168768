"""Dedup's pixel check of the candidates: verification tasks score pairs exactly as the local check, a floor
keeps exactly the pairs that reach it, buckets of pairs give the whole result, and a pair verified at several
alignments keeps the one with the most to spare."""

from __future__ import annotations

import numpy as np

from tests.transform.test_dedup_search import scenes
from transform.dedup_match import thumbnails
from transform.dedup_search import candidates


def test_verification_tasks_score_like_the_local_check():
    from distributed import Client, LocalCluster, get_task_stream

    from transform.dedup_check import verify

    thumbs = thumbnails(scenes(300, seed=6))
    plain = thumbnails(scenes(300, seed=6), equalise=False)
    a, b, window, ref = candidates(thumbs, 10, 256)
    assert len(a) > 40
    local = verify(thumbs, a, b, window, ref, plain=plain, min_band=0.9)  # the detail check travels too
    assert (local[0] < verify(thumbs, a, b, window, ref, plain=plain)[0]).any()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            remote = verify(thumbs, a, b, window, ref, plain=plain, client=client, block=7, min_band=0.9)
    ran = [t for t in stream.data if "_scored" in str(t["key"])]
    assert len(ran) == -(-len(a) // 7)  # one task per block of 7 pairs
    assert np.array_equal(local[0], remote[0]) and np.array_equal(local[1], remote[1])


def test_floor_returns_exactly_the_pairs_at_or_above_it_and_counts_the_rest(monkeypatch):
    """match() with a floor (dedup passes min_correlation) returns the pairs scoring at least the floor,
    with the scores and geometry they have without it, also where a pair comes twice (window hashes and
    the extra perceptual-hash pairs) and the higher of its two scores is kept; the others are counted.
    (Without overlays and further alignments: both rescore a pair short of the floor, which a run without
    one never does; tested in tests/transform/test_aligned_ncc.py and below.)"""
    from functools import partial

    from transform import dedup_check
    from transform.dedup_check import match
    from transform.dedup_match import aligned_scores

    monkeypatch.setattr(dedup_check, "aligned_scores", partial(aligned_scores, overlays=False))
    monkeypatch.setattr(dedup_check, "RETRY_WITHIN", 0.0)

    px = scenes(400, seed=4)
    thumbs, plain = thumbnails(px), thumbnails(px, equalise=False)
    extra = (np.arange(0, 398, 2), np.arange(1, 399, 2))  # every pair of neighbours, some also window candidates
    full = match(thumbs, 10, extra=extra, plain=plain)
    for floor in (0.5, 0.8):
        stats = {}
        got = match(thumbs, 10, extra=extra, plain=plain, floor=floor, stats=stats)
        keep = full[2] >= floor
        assert keep.any() and (~keep).any()
        assert all(np.array_equal(g, f[keep]) for g, f in zip(got, full))
        assert stats["below_floor"] == (~keep).sum()


def test_buckets_of_pairs_give_the_whole_search_result(monkeypatch):
    """The pair reduction and verification run a bucket of lower rows at a time (bounded memory): with
    small buckets the candidates and the verified pairs are exactly those of one bucket, also with
    extra pairs, a floor and the verification as Dask tasks (the thumbnails sent once for every bucket)."""
    from distributed import Client, LocalCluster, get_task_stream

    from transform import dedup_check
    from transform.dedup_check import match

    px = scenes(500, seed=7)
    thumbs, plain = thumbnails(px), thumbnails(px, equalise=False)
    whole = candidates(thumbs, 10, block=128)
    assert all(np.array_equal(a, b) for a, b in zip(whole, candidates(thumbs, 10, block=128, bucket_rows=37)))
    assert len({int(r) // 37 for r in np.minimum(whole[0], whole[1])}) > 5  # many buckets in use
    extra = (np.arange(0, 498, 3), np.arange(1, 499, 3))
    one = match(thumbs, 10, extra=extra, plain=plain, floor=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(one, match(thumbs, 10, extra=extra, plain=plain, floor=0.5,
                                                                bucket_rows=37)))
    among = np.flatnonzero(np.arange(len(px)) % 3 != 0)  # the workers then get these images' thumbnails only
    some = match(thumbs, 10, plain=plain, floor=0.5, among=among)
    monkeypatch.setattr(dedup_check, "VERIFY_BLOCK", 16)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            remote = match(thumbs, 10, extra=extra, plain=plain, floor=0.5, bucket_rows=37, client=client)
        remote_some = match(thumbs, 10, plain=plain, floor=0.5, bucket_rows=37, client=client, among=among)
    assert all(np.array_equal(a, b) for a, b in zip(one, remote))
    assert len([t for t in stream.data if "_scored" in str(t["key"])]) > 5  # verified as tasks
    assert len(some[0]) > 10 and all(np.array_equal(a, b) for a, b in zip(some, remote_some))


def test_a_pair_keeps_the_alignment_with_the_most_to_spare():
    """A pair whose closest alignment falls short of what its geometry needs (by at most RETRY_WITHIN) is
    checked at its further ones, and the one furthest above its bar is kept: asking more of a shifted
    alignment than of the others changes which alignment wins; asking far more retries none."""
    from transform.dedup_check import match

    px = scenes(400, seed=4)
    thumbs, plain = thumbnails(px), thumbnails(px, equalise=False)
    need = lambda g: np.where(g == 1, 0.8, 0.5)
    base, strict_stats = match(thumbs, 10, plain=plain, floor=0.5), {}
    strict = match(thumbs, 10, plain=plain, floor=0.5, required=need, stats=strict_stats)
    both = np.intersect1d(base[0] * len(px) + base[1], strict[0] * len(px) + strict[1])
    base, strict = ([c[np.isin(r[0] * len(px) + r[1], both)] for c in r] for r in (base, strict))
    assert len(both) > 40
    spare = lambda r: r[2] - need(r[3])
    assert (spare(strict) >= spare(base) - 1e-6).all()  # never a worse choice than the closest alignment's
    assert ((base[3] == 1) & (strict[3] != 1)).any()  # some pairs had another alignment, and now keep it
    assert strict_stats["further_alignments"] > 0
    far = {}
    match(thumbs, 10, plain=plain, floor=0.5, required=lambda g: np.full(len(g), 5.0), stats=far)
    assert far["further_alignments"] == 0  # every pair fell far short: none is checked again
