"""Bad inputs at the public boundary: one row per case, each a ValueError/TypeError (or OSError)
raised *before any work* whose message names the parameter or the file.

To add a case, append a ``Case`` to ``CASES``: an id, a function of the fixtures ``env``
(``env.screen`` a small vector screen, ``env.images`` a small image screen, ``env.tmp`` a
temporary folder, ``env.adata`` an AnnData, ``env.scores`` a PairScores, ``env.parquet`` a
table with numeric, boolean, text, list and ragged-list columns, ``env.parquet_text`` one
without numeric columns, ``env.npz``/``env.npz_object`` a good and an object-array
archive), the exception type and a regular expression the message must match (name the
parameter or the file in it). Each case must fail fast: the whole table runs in
seconds because every check fires before any training, k-NN search or compilation.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from typing import NamedTuple

import flax.serialization as fser
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

import pairint_jax as pj
from pairint_jax import _validate as V
from pairint_jax.demo import DemoConfig
from pairint_jax.discovery.campaign import Campaign
from pairint_jax.nre import checkpoint, fit_nre, load_nre, make_encoder, nre_kl_all, nre_trainer, stratified_split
from pairint_jax.nre.model import TrainedNRE
from pairint_jax.report import write_score_report
from pairint_jax.results import pair_scores_from_screen
from pairint_jax.scores.separability import condition_kls


class Case(NamedTuple):
    id: str
    call: Callable
    exc: type | tuple
    match: str


def sep(**kw):
    """``separability_scores`` on the vector screen with the given options."""
    return lambda env: pj.separability_scores(env.screen, **kw)


def nre(**kw):
    return sep(estimator="nre", **kw)


def _vectors():
    return np.zeros((6, 3), np.float32), np.array([0, 0, 0, 1, 1, 1])


def _fake_trained():
    """A TrainedNRE shell: enough to reach nre_kl_all's option checks, which come first."""
    return TrainedNRE(model=None, variables={}, shift=np.zeros(3), scale=np.ones(3), class_names=("ctrl", "A"),
                      heldout=np.ones(6, bool), history={}, config={})


def disj(**kw):
    """``disjointedness_scores`` on the vector screen with the given options."""
    return lambda env: pj.disjointedness_scores(env.screen, **kw)


LABELS = [c for c in ("ctrl", "A", "B", "A+B") for _ in range(12)]


def _with(value, *, row: int = 20, dtype=np.float32):
    """The vector screen's observations with one entry replaced (input row 20 is in condition 'A')."""
    x = np.random.default_rng(0).normal(size=(len(LABELS), 3)).astype(dtype)
    x[row, 1] = value
    return x


def _file(env, name, data: bytes):
    path = env.tmp / name
    path.write_bytes(data)
    return str(path)


def _checkpoint_payload(**override):
    meta = {"class_names": ["ctrl", "A"], "history": {}, "config": {
        "encoder": "mlp", "encoder_kwargs": {}, "n_classes": 2, "feature_shape": [3]}}
    payload = {"format": checkpoint.FORMAT, "variables": {}, "shift": np.zeros(3, np.float32),
               "scale": np.ones(3, np.float32), "heldout": np.ones(6, bool), "meta": json.dumps(meta)}
    payload.update(override)
    return fser.msgpack_serialize(payload)


def _campaign(env, name, damage=None, **create):
    """``Campaign.create`` in a new folder (4 perturbations, one observation), then, with ``damage``,
    ``Campaign.open`` after ``damage(state)`` changed its ``campaign.json``."""
    folder = env.tmp / name
    c = Campaign.create(folder, ["A", "B", "C", "D"], **create)
    if damage is None:
        return c
    c.observe([("A", "B")], [1.0])
    state = json.loads((folder / "campaign.json").read_text())
    damage(state)
    (folder / "campaign.json").write_text(json.dumps(state))
    return Campaign.open(folder)


CASES = [
    # --- a Screen is required (issue 15, item 7) ---
    Case("screen-ndarray", lambda env: pj.separability_scores(np.zeros((10, 3))), TypeError, r"Screen\.from_arrays"),
    Case("screen-list", lambda env: pj.separability_scores([[0.0, 1.0]]), TypeError, r"expects a Screen as screen"),
    Case("screen-path", lambda env: pj.separability_scores(str(env.tmp / "s.h5ad")), TypeError, r"read_screen"),
    Case("screen-none", lambda env: condition_kls(None), TypeError, r"expects a Screen"),
    # --- k-NN options (item 1) ---
    Case("knn-k-zero", sep(k=0), ValueError, r"\bk must be an int >= 1"),
    Case("knn-k-float", sep(k=1.5), TypeError, r"\bk must be an int"),
    Case("knn-k-bool", sep(k=True), TypeError, r"\bk must be an int"),
    Case("knn-dim-zero", sep(dim=0), ValueError, r"\bdim must lie in \[1, inf\)"),
    Case("knn-dim-negative", sep(dim=-3), ValueError, r"\bdim must lie in"),
    Case("knn-dim-half", sep(dim=0.5), ValueError, r"\bdim must lie in"),
    Case("knn-dim-nan", sep(dim=float("nan")), ValueError, r"\bdim must be finite"),
    Case("knn-dim-inf", sep(dim=float("inf")), ValueError, r"\bdim must be finite"),
    Case("knn-dim-str", sep(dim="3"), TypeError, r"\bdim must be a number"),
    Case("knn-max-duplicates", sep(max_duplicates=-1), ValueError, r"max_duplicates"),
    Case("knn-conditions-per-chunk-zero", sep(conditions_per_chunk=0), ValueError, r"conditions_per_chunk"),
    Case("knn-conditions-per-chunk-str", sep(conditions_per_chunk="big"), TypeError, r"conditions_per_chunk"),
    Case("knn-block-size", sep(block_size=-2), ValueError, r"block_size"),
    Case("estimator-unknown", sep(estimator="mine"), ValueError, r"estimator must be one of 'knn', 'nre'"),
    Case("eval-on", sep(estimator="nre", eval_on="train"), ValueError, r"eval_on"),
    # --- SMILE tau (item 1): inf is allowed (MILE) ---
    Case("tau-zero", nre(tau=0), ValueError, r"\btau must be > 0"),
    Case("tau-negative", nre(tau=-5), ValueError, r"\btau must be > 0"),
    Case("tau-nan", nre(tau=float("nan")), ValueError, r"\btau must be a positive number"),
    Case("tau-minus-inf", nre(tau=float("-inf")), ValueError, r"\btau must be a positive number"),
    Case("tau-str", nre(tau="5"), TypeError, r"\btau must be a positive number"),
    # --- NRE training (item 1) ---
    Case("lr-negative", nre(learning_rate=-1), ValueError, r"learning_rate must be > 0"),
    Case("lr-zero", nre(learning_rate=0.0), ValueError, r"learning_rate must be > 0"),
    Case("lr-huge", nre(learning_rate=1e6), ValueError, r"learning_rate must be <= 1"),
    Case("lr-nan", nre(learning_rate=float("nan")), ValueError, r"learning_rate"),
    Case("lr-str", nre(learning_rate="1e-3"), TypeError, r"learning_rate"),
    Case("epochs-zero", nre(epochs=0), ValueError, r"epochs must be an int >= 1"),
    Case("epochs-float", nre(epochs=2.5), TypeError, r"epochs must be an int"),
    Case("batch-size-zero", nre(batch_size=0), ValueError, r"batch_size must be an int >= 1"),
    Case("batch-size-negative", nre(batch_size=-4), ValueError, r"batch_size"),
    Case("val-fraction-zero", nre(val_fraction=0.0), ValueError, r"val_fraction must lie in \(0, 1\)"),
    Case("val-fraction-one", nre(val_fraction=1.0), ValueError, r"val_fraction"),
    Case("val-fraction-big", nre(val_fraction=1.5), ValueError, r"val_fraction"),
    Case("val-fraction-str", nre(val_fraction="0.3"), TypeError, r"val_fraction"),
    Case("marginal", nre(marginal="half"), ValueError, r"marginal must be one of 'all', 'shuffle'"),
    Case("select", nre(select="best"), ValueError, r"select must be one of"),
    Case("encoder-cnn-on-vectors", nre(encoder="cnn"), ValueError, r"encoder='cnn' needs images .* use encoder='mlp'"),
    Case("encoder-unknown", nre(encoder="transformer"), ValueError, r"encoder must be one of"),
    Case("encoder-int", nre(encoder=3), TypeError, r"encoder must be 'mlp', 'cnn' or a flax"),
    Case("encoder-kwargs-unknown", nre(encoder_kwargs={"width": 3}), TypeError, r"encoder_kwargs: \['width'\]"),
    Case("encoder-kwargs-zero-width", nre(encoder_kwargs={"hidden": (0,)}), ValueError, r"encoder_kwargs\['hidden'\]"),
    Case("encoder-kwargs-width-str", nre(encoder_kwargs={"hidden": "64"}), TypeError, r"encoder_kwargs\['hidden'\]"),
    Case("encoder-kwargs-dropout", nre(encoder_kwargs={"dropout": 1.0}), ValueError, r"encoder_kwargs\['dropout'\]"),
    Case("encoder-kwargs-not-dict", nre(encoder_kwargs="big"), TypeError, r"encoder_kwargs must be a dict"),
    Case("cnn-images-too-small", lambda env: pj.separability_scores(env.images, estimator="nre", encoder="cnn"),
         ValueError, r"at least 8x8 pixels, got 4x4"),
    Case("model-not-trained-nre", nre(model="critic.msgpack"), TypeError, r"model must be a TrainedNRE"),
    # --- the NRE building blocks, called directly ---
    Case("fit-nre-lr", lambda env: fit_nre(0, *_vectors(), learning_rate=-1), ValueError, r"learning_rate"),
    Case("fit-nre-standardize", lambda env: fit_nre(0, *_vectors(), standardize="yes"), TypeError, r"standardize"),
    Case("fit-nre-cnn-vectors", lambda env: fit_nre(0, *_vectors(), encoder="cnn"), ValueError, r"encoder='cnn'"),
    Case("fit-nre-epochs", lambda env: fit_nre(0, *_vectors(), epochs=-1), ValueError, r"epochs"),
    Case("trainer-lr", lambda env: nre_trainer(None, class_prior=[0.5, 0.5], learning_rate=0), ValueError,
         r"learning_rate"),
    Case("trainer-marginal", lambda env: nre_trainer(None, class_prior=[0.5, 0.5], marginal="x"), ValueError,
         r"marginal"),
    Case("split-val-fraction", lambda env: stratified_split(0, np.array([0, 0, 1, 1]), val_fraction=2), ValueError,
         r"val_fraction"),
    Case("kl-all-not-trained", lambda env: nre_kl_all(None, *_vectors()), TypeError, r"TrainedNRE"),
    Case("kl-all-tau", lambda env: nre_kl_all(_fake_trained(), *_vectors(), tau=0), ValueError, r"\btau"),
    Case("kl-all-batch-size", lambda env: nre_kl_all(_fake_trained(), *_vectors(), batch_size=0), ValueError,
         r"batch_size"),
    Case("make-encoder-channels", lambda env: make_encoder("cnn", channels=()), ValueError, r"'channels'"),
    Case("make-encoder-hidden", lambda env: make_encoder("mlp", hidden=[64, -1]), ValueError, r"'hidden'"),
    # --- NRE checkpoints (item 2: a garbage --model) ---
    Case("model-file-missing", lambda env: load_nre(env.tmp / "nope.msgpack"), FileNotFoundError, r"nope\.msgpack"),
    Case("model-file-empty", lambda env: load_nre(_file(env, "empty.msgpack", b"")), ValueError,
         r"empty\.msgpack' is empty"),
    Case("model-file-garbage", lambda env: load_nre(_file(env, "junk.msgpack", bytes(range(256)) * 3)), ValueError,
         r"junk\.msgpack' is not a pairint_jax NRE checkpoint"),
    Case("model-file-truncated", lambda env: load_nre(_file(env, "cut.msgpack", _checkpoint_payload()[:40])),
         ValueError, r"cut\.msgpack' is not a pairint_jax NRE checkpoint"),
    Case("model-file-list", lambda env: load_nre(_file(env, "list.msgpack", fser.msgpack_serialize([1, 2]))),
         ValueError, r"list\.msgpack' is not a pairint_jax NRE checkpoint"),
    Case("model-file-missing-field", lambda env: load_nre(_file(
        env, "nometa.msgpack", fser.msgpack_serialize({"format": checkpoint.FORMAT}))), ValueError,
        r"nometa\.msgpack' is a damaged .*'meta'"),
    Case("model-file-bad-meta", lambda env: load_nre(_file(env, "meta.msgpack", _checkpoint_payload(meta="{oops"))),
         ValueError, r"meta\.msgpack' is a damaged"),
    Case("model-file-bad-encoder", lambda env: load_nre(_file(env, "enc.msgpack", _checkpoint_payload(meta=json.dumps(
        {"class_names": ["ctrl", "A"], "history": {}, "config": {
            "encoder": "rnn", "encoder_kwargs": {}, "n_classes": 2, "feature_shape": [3]}})))), ValueError,
        r"enc\.msgpack' is a damaged"),
    Case("model-file-bad-variables", lambda env: load_nre(_file(env, "vars.msgpack", _checkpoint_payload())),
         ValueError, r"vars\.msgpack': the stored variables do not fit"),
    # --- a Screen everywhere (item 7): every public entry point that takes one ---
    Case("disj-ndarray", lambda env: pj.disjointedness_scores(np.zeros((10, 3))), TypeError,
         r"disjointedness_scores expects a Screen .*Screen\.from_arrays"),
    Case("disj-path", lambda env: pj.disjointedness_scores("screen.h5ad"), TypeError, r"pj\.read_screen\(path\)"),
    Case("disj-anndata", lambda env: pj.disjointedness_scores(env.adata), TypeError, r"pj\.score_adata\(adata\)"),
    Case("disj-screen-truth-tuple", lambda env: pj.disjointedness_scores((env.screen, None)), TypeError,
         r"unpack it with screen, truth"),
    Case("condition-kls-ndarray", lambda env: condition_kls(np.zeros((4, 2))), TypeError, r"condition_kls expects"),
    Case("write-screen-ndarray", lambda env: pj.write_screen(np.zeros((4, 2)), env.tmp / "w.npz"), TypeError,
         r"write_screen expects a Screen"),
    Case("pair-scores-from-list", lambda env: pair_scores_from_screen([], np.zeros(0)), TypeError,
         r"pair_scores_from_screen expects a Screen"),
    Case("pl-group-means-none", lambda env: pj.pl.group_means(None), TypeError, r"group_means expects a Screen"),
    Case("pl-observed-vs-expected-scores", lambda env: pj.pl.observed_vs_expected(env.scores), TypeError,
         r"observed_vs_expected expects a Screen .*PairScores.*pass the Screen it was computed from"),
    Case("report-screen-ndarray", lambda env: write_score_report([], env.tmp / "r", screen=np.zeros(3)), TypeError,
         r"write_score_report expects a Screen"),
    Case("score-adata-screen", lambda env: pj.score_adata(env.screen), TypeError,
         r"score_adata expects an AnnData .*already a Screen"),
    Case("score-adata-path", lambda env: pj.score_adata("cells.h5ad"), TypeError, r"anndata\.read_h5ad\(path\)"),
    Case("from-anndata-ndarray", lambda env: pj.io.from_anndata(np.zeros((4, 2))), TypeError,
         r"from_anndata expects an AnnData as adata"),
    # --- extreme values (item 4): too large for float32 is refused naming row and condition ---
    Case("x-1e20-float32", lambda env: pj.Screen.from_arrays(_with(1e20), LABELS), ValueError,
         r"1 observation\(s\) too large for float32 .*condition 'A': 1 row\(s\) \(e\.g\. input row 20"),
    Case("x-1e300-float64", lambda env: pj.Screen.from_arrays(_with(1e300, dtype=np.float64), LABELS), ValueError,
         r"too large for float32 .*condition 'A'.*input row 20, largest \|value\| 1e\+300"),
    Case("x-1e20-sparse", lambda env: pj.Screen.from_arrays(sp.csr_matrix(_with(1e20)), LABELS), ValueError,
         r"too large for float32 .*condition 'A'.*input row 20"),
    Case("with-x-1e20", lambda env: env.screen.with_x(_with(1e20)), ValueError,
         r"too large for float32 .*condition 'A'"),
    Case("x-nan-is-non-finite", lambda env: pj.Screen.from_arrays(_with(np.nan), LABELS), ValueError,
         r"non-finite values .*condition 'A'.*input row 20"),
    Case("control-int", lambda env: pj.Screen.from_arrays(_with(0.0), LABELS, control=0), TypeError,
         r"control must be a label \(str\) .*got 0 \(int\).*control='0'"),
    Case("control-none", lambda env: pj.Screen.from_arrays(_with(0.0), LABELS, control=None), TypeError,
         r"control must be a label"),
    # --- disjointedness options (item 5) ---
    Case("bandwidth-1e-30", disj(bandwidth=1e-30), ValueError,
         r"bandwidth=1e-30 is outside the range float32 kernels can use.*underflows"),
    Case("bandwidth-1e30", disj(bandwidth=1e30), ValueError, r"bandwidth=1e\+30 is outside the range.*overflows"),
    Case("bandwidth-zero", disj(bandwidth=0.0), ValueError, r"fixed bandwidth must be a positive finite float"),
    Case("bandwidth-nan", disj(bandwidth=float("nan")), ValueError, r"fixed bandwidth"),
    Case("bandwidth-mode", disj(bandwidth="median"), ValueError, r"bandwidth must be 'pair', 'global' or a positive"),
    Case("bandwidth-bool", disj(bandwidth=True), TypeError, r"bandwidth must be"),
    Case("global-sample-zero", disj(bandwidth="global", global_sample=0), ValueError, r"global_sample must be an int >= 2"),
    Case("global-sample-one", disj(bandwidth="global", global_sample=1), ValueError, r"global_sample must be an int >= 2"),
    Case("global-sample-negative", disj(bandwidth="global", global_sample=-5), ValueError, r"global_sample"),
    Case("global-sample-float", disj(bandwidth="global", global_sample=2.5), TypeError, r"global_sample must be an int"),
    Case("stream-block-negative", disj(stream=True, stream_block=-2), ValueError, r"stream_block must be an int >= 1"),
    Case("stream-block-str", disj(stream=True, stream_block="big"), TypeError, r"stream_block"),
    Case("pairs-per-chunk-str", disj(pairs_per_chunk="big"), TypeError, r"pairs_per_chunk must be an int.*'auto' or None"),
    Case("pairs-per-chunk-zero", disj(pairs_per_chunk=0), ValueError, r"pairs_per_chunk must be an int >= 1"),
    Case("disj-n-permutations-float", disj(n_permutations=9.5), TypeError, r"n_permutations must be an int"),
    Case("disj-n-permutations-negative", disj(n_permutations=-1), ValueError, r"n_permutations"),
    Case("disj-kernel", disj(kernel="laplace"), ValueError, r"kernel must be one of"),
    Case("disj-null", disj(null="exact"), ValueError, r"null must be one of"),
    Case("disj-median-rtol", disj(median_rtol=0.0), ValueError, r"median_rtol must be > 0"),
    Case("disj-median-method", disj(median_method="sort"), ValueError, r"median_method must be one of"),
    Case("disj-on-zero-bandwidth", disj(on_zero_bandwidth="ignore"), ValueError, r"on_zero_bandwidth must be one of"),
    Case("disj-control-keyword", disj(control=0), TypeError, r"unexpected keyword argument 'control'"),
    Case("disj-key-str", disj(key="seed"), TypeError, r"key must be a JAX PRNG key.*key=jax\.random\.key\(0\)"),
    Case("disj-key-negative", disj(key=-1), ValueError, r"key: an int seed must lie in \[0, 2\*\*32\)"),
    Case("disj-key-batch", disj(key=jax.random.split(jax.random.key(0), 2)), ValueError, r"key must be one key"),
    # --- key= everywhere goes through as_key (item 5): an int is a seed, anything else a clear error ---
    Case("sep-key-float", sep(key=1.5), TypeError, r"key must be a JAX PRNG key"),
    Case("permutation-null-key", lambda env: pj.stats.permutation_null("k", jnp.eye(4), jnp.arange(4),
                                                                       n_permutations=3), TypeError,
         r"key must be a JAX PRNG key, got str"),
    Case("bootstrap-null-key", lambda env: pj.stats.bootstrap_null(None, jnp.eye(4), jnp.arange(4), n_bootstrap=3),
         TypeError, r"key is required"),
    Case("bracket-median-key", lambda env: pj.stats.bracket_median([(jnp.ones((3, 3)), jnp.ones(3, bool),
                                                                     jnp.ones(3, bool))], key=1.0), TypeError,
         r"key must be a JAX PRNG key, got float"),
    Case("split-key", lambda env: stratified_split("0", np.array([0, 0, 1, 1])), TypeError, r"key must be a JAX PRNG"),
    Case("trainer-init-key", lambda env: nre_trainer(make_encoder("mlp"), class_prior=[0.5, 0.5]).init(
        None, jnp.zeros((1, 3))), TypeError, r"key is required"),
    Case("mmd-test-key", lambda env: pj.stats.mixture_mmd2_test(*(jnp.zeros((4, 2)),) * 4, key="k"), TypeError,
         r"key must be a JAX PRNG key"),
    Case("synthetic-key", lambda env: pj.synthetic.disjointedness_mixture("k"), TypeError, r"key must be a JAX PRNG"),
    Case("synthetic-key-none", lambda env: pj.synthetic.separability_tabular(None), TypeError, r"key is required"),
    Case("perturbseq-key", lambda env: pj.synthetic.perturbseq("k"), TypeError, r"key must be a JAX PRNG"),
    Case("perturbseq-kinds", lambda env: pj.synthetic.perturbseq(0, kinds={"synergistic": 1}), ValueError,
         r"kinds: unknown kind"),
    Case("score-adata-key", lambda env: pj.score_adata(env.adata, key="k"), TypeError, r"key must be a JAX PRNG"),
    # --- file readers (item 6): the column and the file are named ---
    Case("parquet-text-feature", lambda env: pj.read_screen(env.parquet, features=["f0", "name"]), ValueError,
         r"feature column 'name' of '.*s\.parquet' holds text, not numbers"),
    Case("parquet-list-among-features", lambda env: pj.read_screen(env.parquet, features=["f0", "emb"]), ValueError,
         r"feature column 'emb' .*holds lists.*features='emb'"),
    Case("parquet-ragged-list", lambda env: pj.read_screen(env.parquet, features="rag"), ValueError,
         r"feature column 'rag' of '.*s\.parquet' is ragged: row 0 has 3 values but row 7 has 2"),
    Case("parquet-text-list", lambda env: pj.read_screen(env.parquet, features="txtlist"), ValueError,
         r"feature column 'txtlist' .*non-numeric values"),
    Case("parquet-text-as-list-column", lambda env: pj.read_screen(env.parquet, features="name"), ValueError,
         r"feature column 'name' .*one list of numbers per row, but row 0 holds 'c0' \(text\)"),
    Case("parquet-missing-feature", lambda env: pj.read_screen(env.parquet, features="nope"), ValueError,
         r"feature column 'nope' is not in '.*s\.parquet'; columns: \["),
    Case("parquet-features-int", lambda env: pj.read_screen(env.parquet, features=5), TypeError,
         r"features must be a column name or a list of column names"),
    Case("parquet-features-empty", lambda env: pj.read_screen(env.parquet, features=[]), ValueError,
         r"features is an empty list"),
    Case("parquet-no-numeric", lambda env: pj.read_screen(env.parquet_text), ValueError,
         r"'.*text\.parquet' has no numeric feature columns .*skipped: 'flag' \(booleans\), 'name' \(text\)"),
    Case("read-screen-old-key", lambda env: pj.read_screen(env.parquet, key="perturbation"), TypeError,
         r"read_screen: key= is now groupby="),
    Case("read-screen-old-obsm", lambda env: pj.read_screen(env.parquet, obsm="X_pca"), TypeError,
         r"read_screen: obsm= is now use_rep="),
    Case("from-anndata-old-key", lambda env: pj.io.from_anndata(env.adata, key="perturbation"), TypeError,
         r"key= is now groupby="),
    Case("score-adata-old-obsm", lambda env: pj.score_adata(env.adata, obsm="X_pca"), TypeError,
         r"score_adata: obsm= is now use_rep="),
    Case("read-screen-missing", lambda env: pj.read_screen(env.tmp / "nope.h5ad"), FileNotFoundError, r"nope\.h5ad"),
    Case("read-screen-suffix", lambda env: pj.read_screen(_file(env, "s.txt", b"x")), ValueError,
         r"unknown screen file type 'txt' for '.*s\.txt'"),
    Case("read-screen-npz-array", lambda env: pj.read_screen(env.npz, x_key="X"), ValueError,
         r"'.*s\.npz' has no array 'X'; arrays present"),
    Case("read-screen-npz-object", lambda env: pj.read_screen(env.npz_object), ValueError,
         r"'.*obj\.npz' stores an object array.*never unpickles"),
    Case("read-screen-use-rep-npz", lambda env: pj.read_screen(env.npz, use_rep="X_pca"), ValueError,
         r"use_rep= and layer= apply to \.h5ad files only, not to '.*s\.npz'"),
    Case("read-screen-groupby-missing", lambda env: pj.read_screen(env.parquet, groupby="guide"), ValueError,
         r"column 'guide' is not in the table"),
    # --- the demo's settings are checked when the config is made ---
    Case("demo-seed-huge", lambda env: DemoConfig(seed=2**40), ValueError, r"\bseed: an int seed must lie in"),
    Case("demo-batch-zero", lambda env: DemoConfig(batch=0), ValueError, r"\bbatch must be an int >= 1"),
    Case("demo-screen", lambda env: DemoConfig(screen="norman"), ValueError, r"\bscreen must be one of 'd11'"),
    Case("demo-policies-str", lambda env: DemoConfig(policies="ids"), TypeError, r"policies must be a non-empty tuple"),
    Case("demo-nre-str", lambda env: DemoConfig(nre="yes"), TypeError, r"\bnre must be True or False"),
    # --- seeds and keys (item 2: --seed 10**23) ---
    Case("key-seed-huge", lambda env: V.as_key(10**23), ValueError, r"\bkey: an int seed must lie in \[0, 2\*\*32\)"),
    Case("key-seed-2-32", lambda env: V.as_key(2**32), ValueError, r"\bkey: an int seed"),
    Case("seed-negative", lambda env: V.seed("seed", -1), ValueError, r"\bseed: an int seed"),
    Case("seed-float", lambda env: V.seed("seed", 1.0), TypeError, r"\bseed must be an int seed"),
    # --- campaigns: the batch fits the pairs, seeds in range, campaign.json checked on load (items 4, 5) ---
    Case("campaign-batch-over-pairs", lambda env: _campaign(env, "cb", batch=7), ValueError,
         r"batch must be at most the number of pairs, 6 for 4 perturbations; got 7"),
    Case("campaign-batch-float", lambda env: _campaign(env, "cf", batch=2.0), TypeError, r"\bbatch must be an int"),
    Case("campaign-seed-huge", lambda env: _campaign(env, "cs", seed=10**23), ValueError, r"\bseed: an int seed"),
    Case("campaign-state-batch-zero", lambda env: _campaign(env, "s1", lambda s: s["settings"].update(batch=0)),
         pj.CampaignStateError, r"campaign\.json: field 'settings\.batch' must be an int >= 1, got 0"),
    Case("campaign-state-self-pair", lambda env: _campaign(env, "s2", lambda s: s["observations"][0].update(b="A")),
         pj.CampaignStateError, r"field 'observations\[0\]' pairs 'A' with itself"),
    Case("campaign-state-string-score", lambda env: _campaign(
        env, "s3", lambda s: s["observations"][0].update(score="1.0")), pj.CampaignStateError,
         r"field 'observations\[0\]\.score' must be a finite number"),
    Case("campaign-state-duplicated-names", lambda env: _campaign(
        env, "s4", lambda s: s["perturbations"].__setitem__(3, "C")), pj.CampaignStateError,
         r"field 'perturbations\[3\]' repeats the name 'C'"),
    Case("campaign-state-version", lambda env: _campaign(env, "s5", lambda s: s.update(version=9)),
         pj.CampaignStateError, r"field 'version' must be 1"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    rng = np.random.default_rng(0)
    labels = [c for c in ("ctrl", "A", "B", "A+B") for _ in range(12)]
    screen = pj.Screen.from_arrays(rng.normal(size=(len(labels), 3)).astype(np.float32), labels, warn=False)
    images = pj.Screen.from_arrays(rng.normal(size=(len(labels), 1, 4, 4)).astype(np.float32), labels, warn=False)
    tmp = tmp_path_factory.mktemp("bad_inputs")
    import anndata
    import pandas as pd

    obs = pd.DataFrame({"perturbation": labels}, index=[str(i) for i in range(len(labels))])
    adata = anndata.AnnData(X=rng.normal(size=(len(labels), 3)).astype(np.float32), obs=obs)
    n = len(labels)
    table = pd.DataFrame({"perturbation": labels, "f0": rng.normal(size=n), "f1": rng.normal(size=n),
                          "flag": rng.random(n) > 0.5, "name": [f"c{i}" for i in range(n)],
                          "emb": [rng.normal(size=3) for _ in range(n)],
                          "rag": [rng.normal(size=2 if i == 7 else 3) for i in range(n)],
                          "txtlist": [["a", "b"]] * n})
    table.to_parquet(tmp / "s.parquet")
    table[["perturbation", "flag", "name"]].to_parquet(tmp / "text.parquet")
    np.savez(tmp / "s.npz", x=np.asarray(screen.x), labels=np.asarray(labels))
    np.savez(tmp / "obj.npz", x=np.asarray(screen.x), labels=np.asarray(labels, dtype=object))
    scores = pj.disjointedness_scores(screen, n_permutations=0)
    return types.SimpleNamespace(screen=screen, images=images, tmp=tmp, adata=adata, parquet=tmp / "s.parquet",
                                 parquet_text=tmp / "text.parquet", npz=tmp / "s.npz", npz_object=tmp / "obj.npz",
                                 scores=scores)


def test_the_table_is_big_and_its_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_a_message_naming_it(case, env):
    with pytest.raises(case.exc, match=case.match):
        case.call(env)


def test_infinite_tau_is_mile_and_accepted():
    assert V.positive_float("tau", float("inf"), allow_inf=True) == float("inf")
    from pairint_jax.nre.model import check_tau

    assert check_tau(float("inf")) == float("inf") and check_tau(5) == 5.0


def test_mlp_on_images_is_allowed():
    from pairint_jax.nre.model import check_encoder_input

    check_encoder_input("mlp", {}, (1, 4, 4))  # the MLP flattens images: a valid choice
    check_encoder_input("cnn", {}, (1, 8, 8))
    check_encoder_input("cnn", {"channels": (16,)}, (3, 2, 2))
