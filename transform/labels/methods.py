"""Aggregation methods over votes given as integer codes (item, worker, label), numpy/scipy only.

- ``majority``: vote counts; ties broken by a worker-weighted vote (each worker weighted by the log-odds
  of its smoothed agreement with the plain majority), then at random with a seed — never by class order.
  No EM.
- ``dawid_skene``: Dawid & Skene (1979) EM over one K x K confusion matrix per worker.
- ``one_coin``: EM over one accuracy per worker (errors spread evenly over the other classes) with a
  Beta prior on that accuracy. K x fewer parameters per worker than Dawid-Skene, so it does not
  overfit workers with few votes (many small workers, one-vote items), where full confusion matrices
  are mostly prior. ``benchmarks/crowd.py`` shows where each wins.

Every method returns a ``Fit``: per-item posteriors, per-worker confusion matrices (for one_coin and
majority the matrices their model implies) and the class prior, which the worker model reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-10


@dataclass
class Fit:
    posteriors: np.ndarray  # (items, k): P(true class | votes); majority: the (tie-broken) vote shares
    confusion: np.ndarray  # (workers, k answered, k true): P(answer | true class)
    prior: np.ndarray  # (k,)
    iterations: int  # EM iterations (0 for majority)
    log_likelihood: float  # per vote, at the last E-step (0 for majority)


def _incidence(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], weight: np.ndarray | None = None):
    """Sparse ``(rows x cols)`` vote-count matrix: EM's sums over votes become sparse x dense products."""
    from scipy import sparse

    data = np.ones(len(rows)) if weight is None else weight
    return sparse.csr_matrix((data, (rows, cols)), shape=shape)


def vote_counts(items: np.ndarray, labels: np.ndarray, n_items: int, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Votes per (item, class) as an (n_items, k) matrix (optionally weighted per vote)."""
    return np.bincount(items * k + labels, weights=weights, minlength=n_items * k).reshape(n_items, k).astype(np.float64)


def _confusion_from(posteriors: np.ndarray, items, workers, labels, n_workers: int, k: int, smoothing: float) -> np.ndarray:
    """One M-step: each worker's answer distribution given the true class, from (soft) item labels."""
    pair = workers * k + labels
    conf = np.asarray(_incidence(pair, items, (n_workers * k, len(posteriors))) @ posteriors).reshape(n_workers, k, k)
    conf = np.clip(conf + smoothing, EPS, None)
    return conf / conf.sum(axis=1, keepdims=True)


def majority(items, workers, labels, n_items: int, n_workers: int, k: int, seed: int = 0,
             smoothing: float = 0.01) -> Fit:
    """Vote shares with ties broken by a worker-weighted vote, then at random (``seed``)."""
    counts = vote_counts(items, labels, n_items, k)
    n = counts.sum(axis=1)
    best = counts.max(axis=1) if n_items else np.empty(0)
    n_top = (counts == best[:, None]).sum(axis=1) if n_items else np.empty(0)
    # agreement with the majority; a vote for one of t tied top classes earns 1/t (no class is favoured)
    credit = (counts[items, labels] == best[items]) / np.maximum(n_top[items], 1) if len(items) else np.empty(0)
    agree = np.bincount(workers, weights=credit, minlength=n_workers)
    share = (agree + 1) / (np.bincount(workers, minlength=n_workers) + 2)
    weight = np.log(np.clip(share, EPS, 1 - 1e-6) * (k - 1) / np.clip(1 - share, 1e-6, None))
    weighted = vote_counts(items, labels, n_items, k, weight[workers]) if len(items) else np.zeros((n_items, k))
    span = np.abs(weighted).sum(axis=1, keepdims=True) + 1
    noise = np.random.default_rng(seed).random((n_items, k))
    # lexicographic: counts, then the weighted vote, then the seeded coin (each term < 1 step of the one before)
    score = counts + 0.5 * (weighted / span + 1) / 2 + 1e-6 * noise
    score[counts < counts.max(axis=1, keepdims=True)] = -np.inf
    label = score.argmax(axis=1) if n_items else np.empty(0, np.int64)
    post = counts / np.maximum(n, 1)[:, None]
    post[np.arange(n_items), label] += EPS  # the broken tie wins argmax downstream
    hard = np.zeros((n_items, k))
    hard[np.arange(n_items), label] = 1.0
    prior = np.clip(hard.mean(axis=0) if n_items else np.full(k, 1 / k), EPS, None)
    conf = _confusion_from(hard, items, workers, labels, n_workers, k, smoothing) if len(items) else np.zeros((n_workers, k, k))
    return Fit(post, conf, prior / prior.sum(), 0, 0.0)


def dawid_skene(items: np.ndarray, workers: np.ndarray, labels: np.ndarray, n_items: int, n_workers: int, k: int,
                gold: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-6,
                smoothing: float = 0.0, prior_strength: float = 0.0, prior_accuracy: float = 0.7,
                accuracy_strength: float = 4.0) -> Fit:
    """Dawid & Skene (1979) EM over per-worker confusion matrices, vectorised over votes.

    Starts from the majority-vote distribution. ``gold`` (class index per item, -1 where unknown)
    pins known items' posteriors after every E-step, and adds a second start: every worker who
    answered at least ``k`` gold items gets a first confusion matrix estimated from those answers
    alone. Of the two runs the more likely one (votes and gold answers) wins. The gold start matters where
    majority vote misleads: a crowd that is mostly adversarial otherwise converges to a permutation of
    the classes. ``smoothing`` is a pseudo-count added to every confusion cell (0 reproduces the
    classic maximum-likelihood EM, as crowd-kit runs it). ``prior_strength`` > 0 adds, per worker and true
    class, that many pseudo-votes of a hierarchical prior (MAP estimate): the worker's *own* accuracy (its
    soft right answers under a Beta(``prior_accuracy``, ``accuracy_strength``) prior) on the diagonal, its
    errors spread as the *whole crowd's* errors for that class are (cat mistaken for dog more than for a
    ship). A worker with few votes then keeps its own accuracy and borrows the confusions, a K x K matrix
    it cannot estimate alone; a worker with many votes is its own data. Both are re-estimated every M-step.
    Measured in ``benchmarks/crowd.py``: it matches one-coin where errors are uniform and few votes a worker
    (where plain Dawid-Skene overfits by 6-21 points), and beats both where errors are confusions.
    """
    n_votes = len(items)
    if n_votes == 0:
        return Fit(np.zeros((n_items, k)), np.zeros((n_workers, k, k)), np.full(k, 1 / k), 0, 0.0)
    counts = vote_counts(items, labels, n_items, k)
    voted = counts.sum(axis=1) > 0
    known = np.flatnonzero(gold >= 0) if gold is not None else np.empty(0, np.int64)
    pair = workers * k + labels  # row of the (worker, answer) in the flattened confusion matrices
    by_pair = _incidence(pair, items, (n_workers * k, n_items))  # M-step: confusion counts = by_pair @ posteriors
    by_item = by_pair.T.tocsr()  # E-step: log-likelihoods = by_item @ log confusion
    pin = _pinner(gold, known)
    def m_step(p: np.ndarray, votes=by_pair) -> tuple[np.ndarray, np.ndarray]:
        # MAP: one pseudo-item a class, so a class of few items keeps a prior (none would never be chosen again)
        prior = np.clip(p.mean(axis=0) if not prior_strength else (p.sum(axis=0) + 1) / (len(p) + k), EPS, None)
        conf = np.asarray(votes @ p).reshape(n_workers, k, k)  # (worker, answered, true): soft vote counts
        if prior_strength:
            _add_crowd_prior(conf, prior_strength, prior_accuracy, accuracy_strength)
        conf += smoothing
        np.clip(conf, EPS, None, out=conf)  # in place: a (workers x K x K) array is the stage's largest
        conf /= conf.sum(axis=1, keepdims=True)
        return prior / prior.sum(), conf

    def em(prior: np.ndarray, conf: np.ndarray) -> Fit:
        previous, ll, iterations, posteriors = -np.inf, -np.inf, 0, None
        for iterations in range(1, max_iter + 1):
            logits = np.log(prior) + by_item @ np.log(conf).reshape(n_workers * k, k)
            posteriors, log_evidence = _normalise(logits)
            if len(known):  # gold items: the likelihood of the votes *and* of the known class
                log_evidence[known] = logits[known, gold[known]]
            ll = float(log_evidence[voted].sum() / n_votes)
            prior, conf = m_step(pin(posteriors))
            if ll - previous < tol:
                break
            previous = ll
        return Fit(posteriors, conf, prior, iterations, ll)

    start = pin(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1))
    best = em(*m_step(start))
    if len(known):
        on_gold = gold[items] >= 0
        seeded = np.bincount(workers[on_gold], minlength=n_workers) >= k
        gold_votes = _incidence(pair, items, by_pair.shape, np.where(seeded[workers] & ~on_gold, 0.0, 1.0))
        from_gold = em(*m_step(start, gold_votes))
        best = max((best, from_gold), key=lambda r: r.log_likelihood)
    return best


def _add_crowd_prior(conf: np.ndarray, strength: float, prior_accuracy: float, accuracy_strength: float) -> None:
    """Add to soft vote counts ``conf`` (worker, answered, true), in place, ``strength`` pseudo-votes a true class
    of each worker's prior: its own smoothed accuracy on the diagonal, the rest spread as the crowd's errors on
    that true class are (with one pseudo-error in every cell, so a crowd that made few errors spreads them near
    evenly). Added one true class at a time: no second (workers x K x K) array."""
    k = conf.shape[1]
    diagonal = np.arange(k)
    right = conf[:, diagonal, diagonal].sum(axis=1)
    accuracy = (right + prior_accuracy * accuracy_strength) / (conf.sum(axis=(1, 2)) + accuracy_strength)
    errors = conf.sum(axis=0)
    np.fill_diagonal(errors, 0.0)
    errors += 1 - np.eye(k)  # one pseudo-error a cell: a few errors seen (or none) do not make a confusion
    errors /= errors.sum(axis=0, keepdims=True)
    wrong = strength * (1 - accuracy)
    for true in range(k):
        conf[:, :, true] += np.multiply.outer(wrong, errors[:, true])
    conf[:, diagonal, diagonal] += strength * accuracy[:, None]


def one_coin(items: np.ndarray, workers: np.ndarray, labels: np.ndarray, n_items: int, n_workers: int, k: int,
             gold: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-6,
             prior_accuracy: float = 0.7, prior_strength: float = 4.0) -> Fit:
    """EM over one accuracy per worker with a Beta(prior_accuracy * s, (1 - prior_accuracy) * s) prior (MAP).

    P(answer = c | truth = t) = a_w if c == t else (1 - a_w) / (K - 1). Gold items are pinned as in
    ``dawid_skene``. Accuracies below chance are allowed (an adversary's votes then count against
    the class it names).
    """
    n_votes = len(items)
    if n_votes == 0:
        return Fit(np.zeros((n_items, k)), np.zeros((n_workers, k, k)), np.full(k, 1 / k), 0, 0.0)
    known = np.flatnonzero(gold >= 0) if gold is not None else np.empty(0, np.int64)
    pin = _pinner(gold, known)
    counts = vote_counts(items, labels, n_items, k)
    voted = counts.sum(axis=1) > 0
    n_w = np.bincount(workers, minlength=n_workers).astype(float)
    alpha, beta = prior_accuracy * prior_strength, (1 - prior_accuracy) * prior_strength
    post = pin(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1))
    previous, ll, iterations = -np.inf, -np.inf, 0
    for iterations in range(1, max_iter + 1):
        right = np.bincount(workers, weights=post[items, labels], minlength=n_workers)
        acc = np.clip((right + alpha) / (n_w + alpha + beta), 1e-6, 1 - 1e-6)
        prior = np.clip(post[voted].mean(axis=0), EPS, None)
        prior /= prior.sum()
        log_wrong = np.log((1 - acc) / (k - 1))
        base = np.bincount(items, weights=log_wrong[workers], minlength=n_items)
        logits = np.log(prior) + base[:, None] + vote_counts(items, labels, n_items, k, (np.log(acc) - log_wrong)[workers])
        post, log_evidence = _normalise(logits)
        if len(known):
            log_evidence[known] = logits[known, gold[known]]
        post = pin(post)
        ll = float(log_evidence[voted].sum() / n_votes)
        if ll - previous < tol:
            break
        previous = ll
    right = np.bincount(workers, weights=post[items, labels], minlength=n_workers)
    acc = np.clip((right + alpha) / (n_w + alpha + beta), 1e-6, 1 - 1e-6)
    conf = np.repeat(((1 - acc) / (k - 1))[:, None, None], k, axis=1).repeat(k, axis=2)
    conf[:, np.arange(k), np.arange(k)] = acc[:, None]
    return Fit(post, conf, prior, iterations, ll)


def _normalise(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise softmax and the log of each row's normaliser (the log evidence)."""
    top = logits.max(axis=1, keepdims=True)
    p = np.exp(logits - top)
    norm = p.sum(axis=1, keepdims=True)
    return p / norm, np.log(norm[:, 0]) + top[:, 0]


def _pinner(gold: np.ndarray | None, known: np.ndarray):
    def pin(p: np.ndarray) -> np.ndarray:
        if len(known):
            p[known] = 0.0
            p[known, gold[known]] = 1.0
        return p
    return pin


def top_two(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the argmax, its value and whether the runner-up ties it."""
    order = np.argsort(-p, axis=1, kind="stable")[:, :2]
    first = np.take_along_axis(p, order[:, :1], axis=1)[:, 0]
    second = np.take_along_axis(p, order[:, 1:2], axis=1)[:, 0] if p.shape[1] > 1 else np.zeros(len(p))
    return order[:, 0], first, np.isclose(first, second, rtol=0, atol=1e-6)

