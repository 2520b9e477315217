"""The probabilistic method: bulk counts as a multinomial mixture of single-cell profiles.

:func:`fastdeconv.deconvolve` with ``method="bayes"`` runs this pipeline (the
method's record in :data:`fastdeconv.methods.REGRESSION` says it needs
single-cell counts).  The model is BayesPrism's (Chu et al. 2022): the reads
of bulk sample ``s`` are ``Multinomial(N_s, sum_k theta_ks phi_k)``, where
``phi_k`` is the normalised expression profile of cell state ``k`` (summed raw
counts of the reference cells in that state) and the states sum into cell
types.  Its steps, each a function below:

1. the reference (:func:`mixture_reference`): counts summed per state, the
   state -> type map, each type's RNA per cell;
2. genes: ribosomal, mitochondrial (optionally sex-linked, haemoglobin)
   genes out, and genes with extreme bulk outliers (:func:`excluded_genes`,
   :func:`outlier_genes`);
3. the fit of ``theta`` per state (:func:`fastdeconv.solvers.mixture.fit_mixture`:
   EM accelerated by SQUAREM, finished by exact Newton steps, stopped on the
   optimality conditions);
4. the reference update (:func:`update_profiles`; BayesPrism's second step):
   each type's profile is moved toward the bulk from the expected expression
   ``Z`` of the first fit, then ``theta`` per type is fitted again;
5. the outputs (:class:`MixtureResult`): fractions of RNA per state and type,
   fractions of cells, standard errors (:func:`fisher_errors`), the
   per-sample fit, and ``Z`` on demand (:meth:`MixtureResult.expression`).

References
----------
Chu T., Wang Z., Pe'er D., Danko C. G. (2022) Cell type and gene expression
deconvolution with BayesPrism enables Bayesian integrative analysis across bulk
and single-cell RNA sequencing in oncology. Nat Cancer 3:505-517.
doi:10.1038/s43018-022-00356-3
Hu M., Chikina M. (2024) InstaPrism: an R package for fast implementation of
BayesPrism. Bioinformatics 40(7):btae440. doi:10.1093/bioinformatics/btae440
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fastdeconv.results import ProportionsResult

__all__ = [
    "GENE_GROUPS",
    "MixtureReference",
    "MixtureResult",
    "mixture_reference",
    "excluded_genes",
    "outlier_genes",
    "update_profiles",
    "fisher_errors",
]

#: Gene groups that :func:`excluded_genes` recognises by name (human and mouse symbols).
#: Ribosomal proteins and mitochondrially encoded genes differ between single-cell and
#: bulk protocols far more than between cell types (BayesPrism drops them by default);
#: sex-linked genes differ between donors; haemoglobin genes come from red cells.
#: ("ribosomal" follows BayesPrism's lists: the RP[LS]/MRP[LS] families by name, which also
#: takes in a few look-alikes such as the RPS6K kinases and antisense transcripts)
GENE_GROUPS = {
    "ribosomal": r"^(M?RP[LS]\d+[A-Z]?\d*([-_.]?\w*)?|RPLP[0-2]|RPSA)$",
    "mitochondrial": r"^MT-",
    "sex": r"^(XIST|TSIX|RPS4Y\d|DDX3Y|KDM5D|UTY|EIF1AY|ZFY|USP9Y|NLGN4Y|TXLNGY|PRKY|TTTY\d+\w*)$",
    "hemoglobin": r"^HB[ABDEGMQZ]\d*$",
}
#: The groups dropped by default.
DEFAULT_EXCLUDE = ("ribosomal", "mitochondrial")
#: BayesPrism's outlier rule: a gene is dropped when it holds more than ``OUTLIER_CUT``
#: of a sample's counts in more than ``OUTLIER_FRACTION`` of the samples.
OUTLIER_CUT, OUTLIER_FRACTION = 0.01, 0.1
#: ... and, on gene sets smaller than 20,000 genes, more than this many times a mean gene's share
OUTLIER_RATIO = 200.0
#: Added to every profile value (then renormalised), as BayesPrism's ``pseudo.min``: a
#: gene absent from a state's reference cells is rare there, not impossible.
PSEUDO_MIN = 1e-8
#: Prior standard deviation of the log fold change of each gene in each type between
#: reference and bulk in the reference update (BayesPrism's ``sigma``).
UPDATE_SIGMA = 2.0
#: BayesPrism keeps a type's original profile when the update moves a gene by more than
#: this (in log units): such a type is too rare in the bulk to re-estimate.
MAX_LOG_SHIFT = 20.0


def _group_patterns(exclude):
    groups = tuple(exclude)
    unknown = [g for g in groups if g not in GENE_GROUPS]
    if unknown:
        raise ValueError(
            f"exclude must name groups among {', '.join(map(repr, GENE_GROUPS))}, got "
            f"{unknown[0]!r} (give further genes to leave out with exclude_genes=)"
        )
    return {g: re.compile(GENE_GROUPS[g], re.IGNORECASE) for g in groups}


def excluded_genes(genes, exclude=DEFAULT_EXCLUDE):
    """The genes of the named groups (ribosomal, mitochondrial, ...) among ``genes``.

    Parameters
    ----------
    genes : sequence of str
        Gene symbols (human ``MT-CO1`` or mouse ``mt-Co1`` style; case is ignored).
    exclude : sequence of str, default ("ribosomal", "mitochondrial")
        Groups of :data:`GENE_GROUPS`.

    Returns
    -------
    dict of str to list of str
        Group -> the genes of ``genes`` in it (a gene is listed under its first group).

    Examples
    --------
    >>> from fastdeconv.bayes import excluded_genes
    >>> excluded_genes(["CD3E", "RPL13A", "RPS27", "MT-CO1", "MRPL15", "XIST"])
    {'ribosomal': ['RPL13A', 'RPS27', 'MRPL15'], 'mitochondrial': ['MT-CO1']}
    >>> excluded_genes(["Rpl13a", "mt-Nd1", "Xist"], ["sex"])
    {'sex': ['Xist']}
    """
    patterns = _group_patterns(exclude)
    out = {g: [] for g in patterns}
    for gene in genes:
        for group, pattern in patterns.items():
            if pattern.search(str(gene)):
                out[group].append(gene)
                break
    return out


def outlier_genes(bulk, *, cut=OUTLIER_CUT, fraction=OUTLIER_FRACTION):
    """Genes that hold an extreme share of the reads in many bulk samples (BayesPrism's rule).

    A gene is an outlier when it holds more than ``cut`` of a sample's total in
    more than ``fraction`` of the samples: a handful of such genes (e.g. a
    highly expressed transcript of one tissue, or an artefact of one
    protocol) would otherwise decide the likelihood alone.  The 1% cut is
    200 times a mean gene's share of a 20,000-gene transcriptome; on fewer
    genes the cut is 200 times the mean share (``200 / n_genes``), so that a
    small gene set is not emptied by the rule.

    Parameters
    ----------
    bulk : pandas.DataFrame
        Genes x samples, linear scale, non-negative.
    cut, fraction : float
        The share of a sample's reads and the share of samples (defaults
        0.01 and 0.1, BayesPrism's).

    Returns
    -------
    list of str

    Examples
    --------
    >>> import pandas as pd
    >>> from fastdeconv.bayes import outlier_genes
    >>> bulk = pd.DataFrame({"s1": [1.0] * 20000 + [500.0], "s2": [1.0] * 20001},
    ...                     index=[f"g{i}" for i in range(20000)] + ["HUGE"])
    >>> outlier_genes(bulk)
    ['HUGE']
    """
    values = bulk.to_numpy()
    n, m = values.shape
    # the rule is made for whole transcriptomes (1% is 200 times a mean gene's share of
    # 20,000 genes); on a smaller gene set the cut keeps that ratio to the mean share
    cut = max(cut, OUTLIER_RATIO / max(n, 1))
    hits = np.zeros(n, dtype=np.int64)
    for j0 in range(0, m, 512):  # blocks of samples: no genes x samples temporary
        block = values[:, j0:j0 + 512].astype(np.float64)
        totals = block.sum(axis=0)
        hits += (block > cut * np.where(totals > 0, totals, np.inf)).sum(axis=1)
    frequent = hits / max(m, 1) > fraction
    return bulk.index[frequent].tolist()


# ---------------------------------------------------------------------------
# the reference
# ---------------------------------------------------------------------------


@dataclass
class MixtureReference:
    """A single-cell reference summed per cell state.

    Attributes
    ----------
    counts : pandas.DataFrame
        Genes x states: the counts of each state's cells added up.
    state_type : pandas.Series
        State -> cell type (every state belongs to one type).
    n_cells : pandas.Series
        Cells per state.
    normalized : bool
        Whether the counts were normalised values (then the RNA per cell is
        unknown and cell fractions equal RNA fractions).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from fastdeconv.bayes import mixture_reference
    >>> counts = pd.DataFrame([[5, 3, 0, 1], [0, 1, 6, 8]], index=["CD3E", "MS4A1"],
    ...                       columns=["c1", "c2", "c3", "c4"])
    >>> ref = mixture_reference(counts, ["T", "T", "B", "B"])
    >>> ref.counts
           T   B
    CD3E   8   1
    MS4A1  1  14
    >>> ref.rna_per_cell().round(1).to_dict()
    {'T': 4.5, 'B': 7.5}
    """

    counts: pd.DataFrame
    state_type: pd.Series
    n_cells: pd.Series
    normalized: bool = False

    def renamed(self, *, case_insensitive=False, strip_version=False, duplicates="raise"):
        """The same reference with gene names normalised as the bulk's are.

        Parameters
        ----------
        case_insensitive, strip_version : bool
            See :func:`fastdeconv.inputs.harmonize_genes`.
        duplicates : {"raise", "sum"}
            Names that become equal: refuse, or add their counts up.

        Returns
        -------
        MixtureReference
        """
        if not (case_insensitive or strip_version):
            return self
        from fastdeconv.inputs import harmonize_genes

        counts = harmonize_genes(
            self.counts, name="reference", case_insensitive=case_insensitive,
            strip_version=strip_version, duplicates=duplicates,
        )
        return MixtureReference(counts, self.state_type, self.n_cells, self.normalized)

    @classmethod
    def from_signature(cls, signature):
        """A reference whose states are the columns of a signature (RNA per cell unknown).

        Parameters
        ----------
        signature : pandas.DataFrame
            Genes x cell types, linear scale (counts, CPM, TPM: each column is
            normalised to sum 1).

        Returns
        -------
        MixtureReference

        Examples
        --------
        >>> import pandas as pd
        >>> from fastdeconv.bayes import MixtureReference
        >>> ref = MixtureReference.from_signature(pd.DataFrame({"T": [9.0, 1.0], "B": [1.0, 4.0]}))
        >>> ref.state_type.to_dict(), ref.rna_per_cell().to_dict()
        ({'T': 'T', 'B': 'B'}, {'T': 1.0, 'B': 1.0})
        """
        names = [str(c) for c in signature.columns]
        return cls(
            counts=signature.set_axis(names, axis=1),
            state_type=pd.Series(names, index=pd.Index(names, name="state"), name="cell_type"),
            n_cells=pd.Series(1, index=names, name="n_cells"),
            normalized=True,
        )

    @property
    def types(self):
        """The cell types, in order of first appearance among the states."""
        return pd.Index(pd.unique(self.state_type.to_numpy()))

    def rna_per_cell(self, genes=None):
        """Mean counts per cell of each type (on ``genes``; default all genes).

        The fraction of a bulk's reads that come from a type is its fraction of
        cells times its reads per cell; this is the divisor that turns one into
        the other.  Counted on the genes the fit uses, because ``theta`` is a
        share of the reads on those genes.

        Parameters
        ----------
        genes : sequence of str, optional
            Genes to count.

        Returns
        -------
        pandas.Series
            Type -> mean reads per cell (1 for every type when the reference
            holds normalised values).
        """
        if self.normalized:
            return pd.Series(1.0, index=self.types)
        counts = self.counts if genes is None else self.counts.loc[list(genes)]
        reads = counts.sum(axis=0).groupby(self.state_type).sum()
        cells = self.n_cells.groupby(self.state_type).sum()
        out = (reads / cells).reindex(self.types).astype(np.float64)
        out.index = [str(t) for t in out.index]
        return out

    def profiles(self, genes):
        """Normalised state profiles on ``genes``, with BayesPrism's pseudo-count.

        Parameters
        ----------
        genes : sequence of str

        Returns
        -------
        pandas.DataFrame
            Genes x states, every column summing to 1, no zeros.
        """
        values = self.counts.loc[list(genes)].to_numpy(dtype=np.float64)
        return pd.DataFrame(_normalise(values), index=list(genes), columns=self.counts.columns)


def _normalise(values):
    """Columns to sum 1, then floored at :data:`PSEUDO_MIN` (and summing to 1 again)."""
    sums = values.sum(axis=0)
    phi = values / np.where(sums > 0, sums, 1.0)
    phi = phi * (1.0 - PSEUDO_MIN * phi.shape[0]) + PSEUDO_MIN
    return phi / phi.sum(axis=0)


def _state_names(types, states):
    """Per-cell state names ``type`` or ``type: state``; unique per type by construction."""
    if states is None:
        return types
    return np.array([t if s == t else f"{t}: {s}" for t, s in zip(types, states)], dtype=object)


def mixture_reference(
    counts, labels=None, states=None, *, label_key=None, state_key=None, layer=None,
    transpose=False, duplicates="raise", normalized=False, gene_names=None, min_cells=1,
    n_jobs=None,
):
    """Sum a labelled single-cell reference per cell state.

    Parameters
    ----------
    counts : array, scipy.sparse matrix, DataFrame or AnnData
        Raw counts, genes x cells (AnnData: cells x genes), as for
        :func:`fastdeconv.build_signature`.
    labels : sequence, pandas.Series or str, optional
        Cell type of each cell (a Series by cell id is aligned; with AnnData a
        str names an ``.obs`` column).
    states : sequence, pandas.Series or str, optional
        Cell state of each cell (sub-clusters, activation states), within its
        type; a state is named ``"type: state"`` unless it equals the type.
        Default: one state per type.
    label_key, state_key : str, optional
        AnnData ``.obs`` columns holding the labels and the states.
    layer : str, optional
        AnnData layer with the raw counts.
    transpose : bool, default False
        ``counts`` is a cells x genes table.
    duplicates : {"raise", "sum"}, default "raise"
        Genes named twice.
    normalized : {False, True, "log1p", "log2p1"}, default False
        The values are not raw counts (see :func:`fastdeconv.inputs.counts.check_raw`).
    gene_names : sequence of str, optional
        Gene names of an array or sparse matrix.
    min_cells : int, default 1
        Fewest cells a state needs.
    n_jobs : int, optional
        Worker threads for the sums.

    Returns
    -------
    MixtureReference

    Raises
    ------
    ValueError
        Without labels, with fewer than two cell types, or a state with too
        few cells.

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.bayes import mixture_reference
    >>> x = np.array([[4, 2, 0, 0, 1], [0, 1, 3, 5, 2]])
    >>> ref = mixture_reference(x, ["A", "A", "B", "B", "B"], states=[0, 0, 0, 1, 1])
    >>> ref.state_type.to_dict()
    {'A: 0': 'A', 'B: 0': 'B', 'B: 1': 'B'}
    """
    from fastdeconv.errors import Fix, InputProblem
    from fastdeconv.inputs.counts import as_counts, as_labels, check_raw

    c = as_counts(counts, layer=layer, transpose=transpose, duplicates=duplicates,
                  gene_names=gene_names)
    c.check_values()
    types = as_labels(labels, c, label_key=label_key)
    if types is None:
        raise InputProblem(
            "the single-cell reference needs the cell type of every cell: pass {0}",
            Fix("labels", "LABELS"),
        )
    if len(np.unique(types)) < 2:
        raise ValueError(
            f"the labels name {len(np.unique(types))} cell type: a deconvolution needs at "
            "least two"
        )
    state_values = None
    if states is not None or state_key is not None:
        state_values = as_labels(states, c, label_key=state_key,
                                 keywords=("states", "state_key"))
    c = check_raw(
        c, normalized,
        needs="the cell fractions need each cell's library size, and the likelihood counts",
        if_normalized="cell fractions then equal RNA fractions",
    )
    names = _state_names(types, state_values)
    order, codes, n = np.unique(names, return_inverse=True, return_counts=True)
    small = n < min_cells
    if small.any():
        raise ValueError(
            f"state {order[np.argmax(small)]!r} has {int(n[small][0])} cell(s), fewer than "
            f"min_cells={min_cells}"
        )
    sums = c.group_sums(codes.astype(np.int64), len(order), np.ones(c.n_cells), n_jobs)
    state_type = pd.Series(
        [str(types[np.argmax(codes == i)]) for i in range(len(order))],
        index=pd.Index([str(o) for o in order], name="state"), name="cell_type",
    )
    # a cell type's states follow each other, types in label order
    first = {str(t): i for i, t in enumerate(pd.unique(types))}
    ranked = sorted(range(len(order)), key=lambda i: (first[state_type.iloc[i]], order[i]))
    frame = pd.DataFrame(sums["count_sum"], index=c.genes,
                         columns=[str(o) for o in order]).iloc[:, ranked]
    if c.is_integer() and not c.normalized:
        frame = frame.round().astype(np.int64)
    return MixtureReference(
        counts=frame,
        state_type=state_type.iloc[ranked],
        n_cells=pd.Series(n, index=[str(o) for o in order], name="n_cells").iloc[ranked],
        normalized=bool(c.normalized),
    )


# ---------------------------------------------------------------------------
# expected expression and the reference update
# ---------------------------------------------------------------------------


def expected_counts_total(phi, theta, X, n_jobs=None, advance=None):
    """``Z`` summed over samples: genes x states, ``sum_s x_gs phi_gk theta_ks / mu_gs``.

    Parameters
    ----------
    phi : ndarray, shape (n, k)
    theta : ndarray, shape (k, m)
        Columns of all-zero samples may be NaN (skipped).
    X : ndarray, shape (n, m)
    n_jobs : int, optional
    advance : callable, optional
        Told the samples of every finished chunk (a progress bar's update,
        see :func:`fastdeconv.solvers.mixture.summarise_mixture`).

    Returns
    -------
    ndarray, shape (n, k)

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.bayes import expected_counts_total
    >>> phi = np.array([[0.5, 0.1], [0.5, 0.9]])
    >>> Z = expected_counts_total(phi, np.array([[0.5], [0.5]]), np.array([[30.0], [50.0]]))
    >>> Z.sum(axis=1).tolist()  # the states' shares add up to the counts
    [30.0, 50.0]
    """
    from fastdeconv.solvers.mixture import summarise_mixture

    return summarise_mixture(np.ascontiguousarray(phi), X, theta, fisher=False, z=True,
                             n_jobs=n_jobs, advance=advance)["z_total"]


def _map_profile(phi_t, z_t, sigma, tol=1e-10, max_iter=100):
    """MAP of one type's log-shifts ``gamma`` (BayesPrism's ``optimize.psi``), by Newton.

    Maximises ``sum_g z_g log psi_g - |gamma|^2 / (2 sigma^2)`` with
    ``psi = phi e^gamma / sum(phi e^gamma)``.  Minus the Hessian is
    ``Z diag(psi) + I / sigma^2 - Z psi psi'`` (diagonal minus rank one), so
    each Newton step costs O(n) by the Sherman-Morrison formula.
    """
    Z = z_t.sum()
    if not Z > 0:
        return np.zeros_like(phi_t), 0
    logphi = np.log(phi_t)
    prec = 1.0 / sigma**2

    def state(g):
        lg = logphi + g
        top = lg.max()
        e = np.exp(lg - top)
        s = e.sum()
        psi = e / s
        f = float(z_t @ (lg - top - np.log(s)) - 0.5 * prec * (g @ g))
        return f, psi

    g = np.zeros_like(phi_t)
    f, psi = state(g)
    for it in range(1, max_iter + 1):
        grad = z_t - Z * psi - prec * g
        if np.abs(grad).max() <= tol * (Z + 1.0):
            return g, it
        d = Z * psi + prec  # diagonal of minus the Hessian, minus the rank-one Z psi psi'
        u = psi / d
        step = grad / d + u * (Z * (psi @ (grad / d)) / (1.0 - Z * (psi @ u)))
        t = 1.0
        while t > 1e-12:
            fn, psin = state(g + t * step)
            if fn >= f + 1e-4 * t * (grad @ step) or (fn >= f and t < 1e-3):
                break
            t *= 0.5
        else:
            return g, it
        g = g + t * step
        if abs(fn - f) <= 1e-15 * abs(f):
            f, psi = fn, psin
            break
        f, psi = fn, psin
    return g, max_iter


def _mle_shared_shift(phi, Z):
    """MLE of one log-shift per gene shared by every type (BayesPrism's MLE mode), by L-BFGS."""
    from scipy.optimize import minimize

    logphi = np.log(phi)
    Zt = Z.sum(axis=0)
    scale = max(float(Zt.sum()), 1.0)

    def negative(g):
        lg = logphi + g[:, None]
        top = lg.max(axis=0)
        e = np.exp(lg - top)
        s = e.sum(axis=0)
        psi = e / s
        f = float((Z * (lg - top - np.log(s))).sum())
        grad = (Z - Zt * psi).sum(axis=1)
        return -f / scale, -grad / scale

    res = minimize(negative, np.zeros(phi.shape[0]), jac=True, method="L-BFGS-B",
                   options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10})
    g = res.x - res.x.mean()
    return g, int(res.nit)


def update_profiles(phi, Z, *, mode="map", sigma=UPDATE_SIGMA):
    """Move each cell type's profile toward the bulk (BayesPrism's reference update).

    The reference comes from single cells of another platform, batch or
    donor; the expected expression ``Z`` of each type in the bulk (from a
    first fit) tells how each gene differs.  The updated profile of type
    ``t`` is ``psi_t = phi_t e^gamma_t / sum(phi_t e^gamma_t)`` with

    - ``mode="map"`` (default; BayesPrism's ``"MAP"``): one log-shift per gene
      and type, with a Normal(0, ``sigma``^2) prior, maximising
      ``sum_g Z_gt log psi_tg`` plus the prior (exactly, by Newton steps);
      a type whose shifts exceed 20 in absolute value keeps its profile, as
      in BayesPrism (such a type is too rare in the bulk to re-estimate);
    - ``mode="mle"`` (BayesPrism's ``"MLE"``; for spatial data, where most
      types are rare in every spot): one log-shift per gene shared by every
      type (a platform effect), by maximum likelihood.

    Parameters
    ----------
    phi : ndarray, shape (n, T)
        Type profiles (columns sum to 1, positive).
    Z : ndarray, shape (n, T)
        Expected counts of each type, summed over the bulk samples.
    mode : {"map", "mle"}, default "map"
    sigma : float, default 2.0
        Prior standard deviation of the log-shifts (``mode="map"``).

    Returns
    -------
    psi : ndarray, shape (n, T)
        Updated profiles (columns sum to 1).
    shifts : ndarray, shape (n, T)
        The log-shifts ``gamma`` (zeros for a type kept as it was).

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.bayes import update_profiles
    >>> phi = np.array([[0.5, 0.2], [0.3, 0.2], [0.2, 0.6]])
    >>> Z = 1e6 * np.array([[0.25, 0.2], [0.25, 0.2], [0.5, 0.6]])  # type 0 differs in the bulk
    >>> psi, shifts = update_profiles(phi, Z)
    >>> psi.round(3).T.tolist()
    [[0.25, 0.25, 0.5], [0.2, 0.2, 0.6]]
    """
    if mode not in ("map", "mle"):
        raise ValueError(f"update mode must be 'map' or 'mle', got {mode!r}")
    n, T = phi.shape
    shifts = np.zeros((n, T))
    if mode == "mle":
        g, _ = _mle_shared_shift(phi, Z)
        shifts[:] = g[:, None]
    else:
        for t in range(T):
            g, _ = _map_profile(phi[:, t], Z[:, t], sigma)
            if np.abs(g).max() <= MAX_LOG_SHIFT:
                shifts[:, t] = g
    lg = np.log(phi) + shifts
    psi = np.exp(lg - lg.max(axis=0))
    return psi / psi.sum(axis=0), shifts


# ---------------------------------------------------------------------------
# uncertainty
# ---------------------------------------------------------------------------


def fisher_errors(phi, theta, X, *, groups=None, contents=None, alpha=None, n_jobs=None):
    """Standard errors of the proportions from the observed Fisher information.

    For sample ``s`` the information of the multinomial likelihood is
    ``H = sum_g x_g phi_g phi_g' / mu_g^2``; its inverse restricted to the
    simplex (``sum(theta) = 1``; types with no share are held at 0) is the
    Laplace covariance.  Bulk data are over-dispersed and often not counts
    (TPM, intensities), so the covariance is multiplied by the sample's
    Pearson dispersion ``sum_g (x_g - N mu_g)^2 / (N mu_g) / (n - k)``
    (quasi-likelihood): the errors then do not depend on the scale of the
    data, and for true multinomial counts the dispersion is about 1.

    Parameters
    ----------
    phi : ndarray, shape (n, k)
    theta : ndarray, shape (k, m)
    X : ndarray, shape (n, m)
    groups : ndarray of int, shape (k,), optional
        Group (cell type) of every column: return the errors of the groups'
        sums (states summed into types) instead.
    contents : ndarray, shape (T,), optional
        RNA per cell of every group (column without ``groups``): also return the
        errors of the cell fractions ``(p / contents) / sum(p / contents)`` of
        the group shares ``p`` (delta method).
    alpha : ndarray, shape (k,), optional
        The fit's Dirichlet parameters: the prior's curvature enters the
        information (Laplace approximation of the posterior).
    n_jobs : int, optional
        Worker threads (the errors are computed in the Numba kernel
        :func:`fastdeconv.kernels.mixture.summary_batch`, chunk by chunk).

    Returns
    -------
    se : ndarray, shape (T, m)
        Standard errors of ``theta`` (of its group sums with ``groups``).
    se_cells : ndarray, shape (T, m) or None
        Standard errors of the cell fractions.
    dispersion : ndarray, shape (m,)

    Examples
    --------
    >>> import numpy as np
    >>> from fastdeconv.bayes import fisher_errors
    >>> phi = np.array([[0.7, 0.1], [0.2, 0.1], [0.1, 0.8]])
    >>> x = np.array([[200.0], [150.0], [650.0]])
    >>> theta = np.array([[0.2], [0.8]])
    >>> se, _, disp = fisher_errors(phi, theta, x)
    >>> bool(np.isclose(se[0, 0], se[1, 0]))  # two states: one error, shared
    True
    """
    from fastdeconv.solvers.mixture import summarise_mixture

    out = summarise_mixture(
        np.ascontiguousarray(phi, dtype=np.float64), X, theta, alpha=alpha, groups=groups,
        contents=contents, fisher=True, n_jobs=n_jobs,
    )
    return out["se"], out["se_cells"], out["dispersion"]


def _sum_by_type(values, codes, n_types):
    """Rows (states) of ``values`` (k x m) summed into their types' rows (T x m)."""
    out = np.zeros((n_types, values.shape[1]))
    np.add.at(out, codes, values)
    return out


# ---------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------


@dataclass
class MixtureResult(ProportionsResult):
    """Result of ``deconvolve(..., method="bayes")``.

    Attributes
    ----------
    proportions : pandas.DataFrame
        Samples x cell types: fractions of cells (``fractions="cells"``) or
        of RNA (``"rna"``), rows summing to 1.
    rna_fractions, cell_fractions : pandas.DataFrame
        Both kinds, samples x cell types (the cell fractions equal the RNA
        fractions when the reference holds normalised values).
    state_fractions : pandas.DataFrame
        Samples x states: the fractions of RNA of the first fit, per state.
    uncertainty : pandas.DataFrame or None
        Standard errors of ``proportions`` (same shape), from the Fisher
        information with the quasi-likelihood dispersion (see
        :func:`fisher_errors`); None with ``uncertainty=False``.
    fit : pandas.DataFrame
        Per sample: ``loglik`` (the final fit's objective: the log-likelihood
        up to the multinomial constant, plus the Dirichlet prior's
        ``sum((alpha - 1) log theta)`` when ``alpha > 1``), ``pearson_r`` (bulk
        vs ``N mu`` on the genes used), ``dispersion``, ``converged``,
        ``n_eval`` and ``n_newton`` (likelihood evaluations and exact Hessians,
        both fits together), ``total`` (the sample's reads on the genes used).
    profiles : pandas.DataFrame
        Genes used x cell types: the profiles of the final fit after the
        reference update; without it, each type's pooled profile (its cells'
        counts added up; a fit over several states per type mixes its states'
        profiles by their fitted shares, which :meth:`expression` uses).
    reference_shift : pandas.DataFrame or None
        Genes used x cell types: the log-shifts of the reference update.
    genes_used : list of str
    genes_excluded : dict
        Group (``"ribosomal"``, ``"outliers"``, ...) -> genes left out.
    rna_per_cell : pandas.Series
        Cell type -> mean reads per reference cell on the genes used.
    gene_match : fastdeconv.inputs.GeneMatch
    method : str
    options : dict

    Examples
    --------
    >>> import numpy as np, pandas as pd, fastdeconv
    >>> rng = np.random.default_rng(0)
    >>> genes = [f"g{i}" for i in range(300)]
    >>> prof = rng.gamma(0.5, 1.0, (300, 2)) * [1.0, 3.0]
    >>> cells = rng.poisson(np.repeat(prof, 40, axis=1) * 2.0)
    >>> counts = pd.DataFrame(cells, index=genes, columns=[f"c{i}" for i in range(80)])
    >>> labels = ["T"] * 40 + ["B"] * 40
    >>> mix = (prof / prof.sum(0)) @ np.array([[0.3, 0.6], [0.7, 0.4]])
    >>> bulk = pd.DataFrame(rng.poisson(mix * 1e6), index=genes, columns=["s1", "s2"])
    >>> res = fastdeconv.deconvolve(bulk, counts, labels=labels, method="bayes",
    ...                             fractions="rna", update_reference=False)
    >>> res.proportions.round(2)
           T    B
    s1  0.3  0.7
    s2  0.6  0.4
    """

    proportions: pd.DataFrame
    rna_fractions: pd.DataFrame
    cell_fractions: pd.DataFrame
    state_fractions: pd.DataFrame
    uncertainty: pd.DataFrame | None
    fit: pd.DataFrame
    profiles: pd.DataFrame
    reference_shift: pd.DataFrame | None
    genes_used: list
    genes_excluded: dict
    rna_per_cell: pd.Series
    gene_match: object
    method: str = "bayes"
    options: dict = field(default_factory=dict)
    _bulk: pd.DataFrame | None = field(default=None, repr=False)
    _fit: tuple | None = field(default=None, repr=False)  # (profiles, shares, type codes)

    def summary(self):
        """A readable report: model, genes, fit, mean proportions.

        Returns
        -------
        str
        """
        m, T = self.proportions.shape
        fit = self.fit
        ok = fit["converged"].astype(bool)
        excluded = ", ".join(f"{len(v)} {k}" for k, v in self.genes_excluded.items() if v)
        lines = [
            f"Multinomial mixture fit of {m} sample(s), {T} cell types, "
            f"{self.state_fractions.shape[1]} states (method 'bayes', "
            f"{'reference updated: ' + self.options.get('update_reference') if self.reference_shift is not None else 'reference as given'})",
            f"Genes: {str(self.gene_match).replace('signature genes', 'reference genes')}; "
            f"{len(self.genes_used)} used"
            + (f" (left out: {excluded})" if excluded else ""),
            f"Proportions are fractions of {'cells' if self.options.get('fractions') == 'cells' else 'RNA'}",
            "Fit (median over samples): Pearson r {:.4f}, dispersion {:.3g}; {} of {} converged".format(
                fit["pearson_r"].median(), fit["dispersion"].median(), int(ok.sum()), m
            ),
            "Mean proportions:",
        ]
        mean = self.proportions.mean(axis=0).sort_values(ascending=False)
        width = max(len(str(c)) for c in mean.index)
        lines.extend(f"  {str(c):<{width}}  {v:.4f}" for c, v in mean.items())
        return "\n".join(lines)

    def expression(self, cell_type, genes=None):
        """Expected expression of one cell type in every sample (BayesPrism's ``Z``).

        ``Z_gs = x_gs psi_gt theta_ts / mu_gs``: the part of the bulk's
        counts of gene ``g`` in sample ``s`` that the model assigns to type
        ``t`` (the types' ``Z`` add up to the bulk).  Computed on demand, one
        type at a time, so memory stays at one genes x samples table.

        Parameters
        ----------
        cell_type : str
            A column of :attr:`proportions`.
        genes : sequence of str, optional
            Genes (among :attr:`genes_used`); default all used genes.

        Returns
        -------
        pandas.DataFrame
            Genes x samples, in the bulk's units.
        """
        if self._bulk is None:
            raise ValueError("this result keeps no bulk (it was made without one)")
        types = list(self.rna_fractions.columns)
        if cell_type not in types:
            raise ValueError(f"cell_type must be one of {types}, got {cell_type!r}")
        rows = self.genes_used if genes is None else list(genes)
        unknown = pd.Index(rows).difference(pd.Index(self.genes_used))
        if len(unknown):
            raise ValueError(
                f"{len(unknown)} gene(s) are not among the genes used (e.g. {list(unknown[:3])})"
            )
        idx = pd.Index(self.genes_used).get_indexer(rows)
        if self._fit is not None:  # the fit's own columns (states), summed into the type
            psi, theta, codes = self._fit
        else:
            psi, theta = self.profiles.to_numpy(), self.rna_fractions.to_numpy().T
            codes = np.arange(psi.shape[1])
        theta = np.nan_to_num(theta)
        X = self._bulk.to_numpy()[idx].astype(np.float64)
        mine = np.flatnonzero(codes == types.index(cell_type))
        mu = psi[idx] @ theta
        part = psi[np.ix_(idx, mine)] @ theta[mine]
        with np.errstate(divide="ignore", invalid="ignore"):
            Z = np.where(mu > 0, X * part / mu, 0.0)
        return pd.DataFrame(Z, index=rows, columns=self._bulk.columns)

    def write_expression(self, folder):
        """Write :meth:`expression` of every cell type to ``folder/<type>.tsv.gz``.

        One type at a time (memory: one genes x samples table).  Characters other
        than letters, digits and ``.+-`` become ``_``; a name that then repeats
        another gets its column number appended.

        Parameters
        ----------
        folder : str or os.PathLike
            Created if missing.

        Returns
        -------
        list of pathlib.Path
            The files written.
        """
        from pathlib import Path

        from fastdeconv.io import write_table

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        used = set()
        for i, t in enumerate(self.rna_fractions.columns):
            safe = re.sub(r"[^\w.+-]+", "_", str(t)).strip("_") or "type"
            if safe.lower() in used:  # two names that differ only in punctuation or case
                safe = f"{safe}_{i + 1}"
            used.add(safe.lower())
            path = folder / f"{safe}.tsv.gz"
            write_table(self.expression(t), path, index_label="gene")
            written.append(path)
        return written

    def write(self, path, *, fit_path=None, uncertainty_path=None):
        """Write the proportions, and optionally the fit and the standard errors.

        Parameters
        ----------
        path : str or os.PathLike
            Proportions (samples x cell types).
        fit_path, uncertainty_path : str or os.PathLike, optional
            The per-sample fit table; the standard errors (same layout as
            the proportions).
        """
        from fastdeconv.io import write_table

        super().write(path, fit_path=fit_path)
        if uncertainty_path is not None:
            if self.uncertainty is None:
                raise ValueError("no uncertainty was computed: run with uncertainty=True")
            write_table(self.uncertainty, uncertainty_path, index_label="sample")

    def plot(self, path=None, *, title=None):
        """Stacked bars of the proportions.

        Parameters
        ----------
        path : str or os.PathLike, optional
        title : str, optional

        Returns
        -------
        matplotlib.figure.Figure
        """
        return self.plot_proportions(path, title=title)

    def plot_fit(self, path=None, *, title=None):
        """Per-sample fit diagnostics (see :func:`fastdeconv.plotting.plot_fit_quality`).

        Parameters
        ----------
        path : str or os.PathLike, optional
        title : str, optional

        Returns
        -------
        matplotlib.figure.Figure
        """
        from fastdeconv.plotting import plot_fit_quality

        return plot_fit_quality(self.fit, path=path, title=title)


# ---------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------

#: ``fractions=`` values
FRACTIONS = ("auto", "cells", "rna")
#: ``update_reference=`` values (True means the default mode)
UPDATE_MODES = ("map", "mle")


def check_bayes_options(fractions, update_reference, uncertainty, alpha, exclude):
    """Validate the likelihood method's options; return them normalised.

    Returns
    -------
    tuple
        ``(fractions, update mode or None, uncertainty, alpha, exclude)``.
    """
    from fastdeconv._checks import check_choice

    fractions = check_choice(fractions, "fractions", FRACTIONS)
    if update_reference is True:
        update_reference = "map"
    elif update_reference is False or update_reference is None:
        update_reference = None
    else:
        update_reference = check_choice(update_reference, "update_reference", UPDATE_MODES)
    if not isinstance(uncertainty, (bool, np.bool_)):
        raise ValueError(f"uncertainty must be True or False, got {uncertainty!r}")
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number of at least 1, got {alpha!r}") from None
    if not np.isfinite(a) or a < 1:
        raise ValueError(
            f"alpha must be at least 1 (1: maximum likelihood; below 1 the posterior has no "
            f"maximum), got {alpha!r}"
        )
    if isinstance(exclude, str):
        exclude = (exclude,)
    _group_patterns(exclude or ())
    return fractions, update_reference, bool(uncertainty), a, tuple(exclude or ())


#: Most samples per call of the method (a progress bar advances between calls) ...
_BLOCK = 4096
#: ... and samples times genes times states per call: blocks of a second or two, so that
#: the bar moves on wide references too (each sample's fit is its own: blocks change nothing)
_BLOCK_WORK = 1 << 26
#: Samples times genes times states above which the bars are shown by default (about two
#: seconds of fitting on two cores), besides more than :data:`fastdeconv._progress.MIN_TOTAL`
#: samples.
PROGRESS_WORK = 100_000_000


def _fit(record, phi, X, alpha, solver, theta0=None, progress=None, desc="bayes fit"):
    """The method's fit of every sample, in blocks of samples (with a progress bar)."""
    from fastdeconv._progress import progress_bar
    from fastdeconv.methods._problem import MethodFit, MixtureProblem

    phi = np.ascontiguousarray(phi)
    a = np.full(phi.shape[1], alpha)
    m = X.shape[1]
    block = int(min(_BLOCK, max(256, _BLOCK_WORK // phi.size)))
    fits = []
    with progress_bar(m, progress, desc=desc) as bar:
        for j0 in range(0, m, block):
            j1 = min(m, j0 + block)
            problem = MixtureProblem(
                phi, X[:, j0:j1], a, n_jobs=solver["n_jobs"], max_iter=solver["max_iter"],
                tol=solver["tol"], theta0=None if theta0 is None else theta0[:, j0:j1],
            )
            fits.append(record.fit(problem))
            bar.update(j1 - j0)
    if len(fits) == 1:
        return fits[0]
    return MethodFit(
        np.hstack([f.coefficients for f in fits]),
        np.concatenate([f.converged for f in fits]),
        np.concatenate([f.n_iter for f in fits]),
        np.concatenate([f.n_reweight for f in fits]),
        None,
        {key: np.concatenate([f.extra[key] for f in fits]) for key in fits[0].extra},
    )


def run(
    record, bulk, reference, *, fractions="auto", update_reference="map", uncertainty=True,
    alpha=1.0, exclude=DEFAULT_EXCLUDE, exclude_genes=None, outliers=True, min_genes=None,
    solver=None, options=None, progress=None,
):
    """The likelihood pipeline on a read bulk and a :class:`MixtureReference`.

    Called by :func:`fastdeconv.deconvolve` (which reads and checks the
    inputs and options); see there for the parameters.  With ``progress``
    (default: a terminal and more than 4096 samples or about two seconds of
    fitting, :data:`PROGRESS_WORK`) each pass over the samples has a bar: the
    fit, the reference update's expected counts, the refit and the summary;
    the first compilation of the kernels says so above them.

    Returns
    -------
    MixtureResult
    """
    from fastdeconv._progress import compile_notice

    show = _show(progress, bulk.shape[1], *reference.counts.shape)  # decided once
    with compile_notice(show):
        return _run(record, bulk, reference, fractions=fractions,
                    update_reference=update_reference, uncertainty=uncertainty, alpha=alpha,
                    exclude=exclude, exclude_genes=exclude_genes, outliers=outliers,
                    min_genes=min_genes, solver=solver, options=options, progress=show)


def _show(progress, m, n, k):
    """Whether the bars of a fit of ``m`` samples on ``n`` genes and ``k`` states are shown."""
    from fastdeconv._progress import MIN_TOTAL, show_progress

    return show_progress(progress, m > MIN_TOTAL or m * n * k > PROGRESS_WORK)


def _run(record, bulk, reference, *, fractions, update_reference, uncertainty, alpha, exclude,
         exclude_genes, outliers, min_genes, solver, options, progress):
    """The body of :func:`run`."""
    from fastdeconv._progress import advancer, progress_bar
    from fastdeconv.fractions import to_cell_fractions
    from fastdeconv.inputs import match_genes
    from fastdeconv.inputs.tables import warn_if_zero_samples
    from fastdeconv.solvers.mixture import DEFAULT_MAX_ITER, DEFAULT_TOL

    solver = solver or {"n_jobs": None, "max_iter": DEFAULT_MAX_ITER, "tol": DEFAULT_TOL}
    dropped = excluded_genes(reference.counts.index, exclude)
    if exclude_genes is not None:
        extra = [str(g) for g in exclude_genes]
        dropped["given"] = [g for g in reference.counts.index if g in set(extra)]
    if outliers:
        dropped["outliers"] = outlier_genes(bulk)
    out = set().union(*dropped.values()) if dropped else set()
    expressed = reference.counts.index[reference.counts.to_numpy().sum(axis=1) > 0]
    keep_ref = reference.counts.loc[[g for g in expressed if g not in out]]
    # the genes left out are not in keep_ref, so the match drops them from the bulk too
    # (one copy of the bulk's rows, not two)
    B_m, R_m, gene_match = match_genes(bulk, keep_ref, min_genes=min_genes)
    genes = list(R_m.index)
    X = B_m.to_numpy()  # in its own dtype: the kernels convert chunk by chunk
    state_type = reference.state_type.reindex(reference.counts.columns)
    if state_type.isna().any():
        raise ValueError("every column of the reference's counts needs a cell type in "
                         "state_type")
    reference = MixtureReference(reference.counts, state_type, reference.n_cells,
                                 reference.normalized)
    types = reference.types
    codes = pd.Index(types).get_indexer(reference.state_type.to_numpy())
    phi_states = reference.profiles(genes).to_numpy()
    # each type's pooled profile: its cells' counts added up
    type_counts = reference.counts.loc[genes].T.groupby(reference.state_type).sum().T[types]
    phi_types = _normalise(type_counts.to_numpy(dtype=np.float64))
    first = _fit(record, phi_states, X, alpha, solver, progress=progress)
    theta_states = first.coefficients
    zero = ~np.isfinite(theta_states).all(axis=0)  # the fit leaves all-zero samples NaN
    warn_if_zero_samples(B_m.columns, zero, len(genes), stacklevel=5)
    theta_types = _sum_by_type(theta_states, codes, len(types))

    shifts = None
    final, final_phi, final_codes = first, phi_states, codes
    if update_reference is not None:
        with progress_bar(X.shape[1], progress, desc="bayes update") as bar:
            Z = expected_counts_total(phi_states, theta_states, X, n_jobs=solver["n_jobs"],
                                      advance=advancer(bar))
        Z_types = _sum_by_type(Z.T, codes, len(types)).T
        psi, shifts = update_profiles(phi_types, Z_types, mode=update_reference)
        # warm start from the first fit's type shares (floored: the update may revive a type)
        start = np.nan_to_num(theta_types, nan=1.0 / len(types)) + 1e-6
        final = _fit(record, psi, X, alpha, solver, theta0=start / start.sum(axis=0),
                     progress=progress, desc="bayes refit")
        theta_types = final.coefficients
        final_phi, final_codes = psi, np.arange(len(types))

    rna_per_cell = reference.rna_per_cell(genes)
    contents = rna_per_cell.to_numpy()
    if fractions == "auto":
        fractions = "rna" if reference.normalized else "cells"
    from fastdeconv.solvers.mixture import summarise_mixture

    with progress_bar(X.shape[1], progress, desc="bayes summary") as bar:
        stats = summarise_mixture(
            np.ascontiguousarray(final_phi), X, final.coefficients,
            alpha=np.full(final_phi.shape[1], alpha), groups=final_codes, contents=contents,
            fisher=uncertainty, n_jobs=solver["n_jobs"], advance=advancer(bar),
        )
    se = None
    if uncertainty:
        se = stats["se_cells"] if fractions == "cells" else stats["se"]

    samples = B_m.columns
    rna_df = pd.DataFrame(theta_types.T, index=samples, columns=types)
    cells_df = to_cell_fractions(rna_df, rna_per_cell)
    props = cells_df if fractions == "cells" else rna_df
    fit = pd.DataFrame({
        "loglik": final.extra["loglik"],
        "pearson_r": stats["pearson_r"],
        "dispersion": stats["dispersion"],
        "converged": final.converged & first.converged,
        "n_eval": final.n_iter + (first.n_iter if final is not first else 0),
        "n_newton": final.extra["n_newton"]
        + (first.extra["n_newton"] if final is not first else 0),
        "total": X.sum(axis=0, dtype=np.float64),
    }, index=samples)
    profiles = pd.DataFrame(final_phi if shifts is not None else phi_types, index=genes,
                            columns=types)
    opts = dict(options or {})
    opts.update(fractions=fractions, update_reference=update_reference,
                uncertainty=uncertainty, alpha=alpha, exclude=list(exclude))
    return MixtureResult(
        proportions=props,
        rna_fractions=rna_df,
        cell_fractions=cells_df,
        state_fractions=pd.DataFrame(theta_states.T, index=samples,
                                     columns=reference.counts.columns),
        uncertainty=None if se is None else pd.DataFrame(se.T, index=samples, columns=types),
        fit=fit,
        profiles=profiles,
        reference_shift=None if shifts is None else pd.DataFrame(shifts, index=genes,
                                                                 columns=types),
        genes_used=genes,
        genes_excluded=dropped,
        rna_per_cell=rna_per_cell.rename("rna_per_cell"),
        gene_match=gene_match,
        options=opts,
        _bulk=B_m,
        _fit=(np.ascontiguousarray(final_phi), final.coefficients, np.asarray(final_codes)),
    )
