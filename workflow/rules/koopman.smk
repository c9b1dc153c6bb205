# Koopman analysis of one (system, model, n_states) across its lag grid.


rule koopman:
    """K(tau), timescales vs lag, tau*, CK test, eigenvectors and populations with 95% CIs."""
    input:
        probs=lambda wc: model_probs(wc.system, wc.model, wc.n_states, "test"),
    output:
        **{
            t: L.koopman_table("{system}", "{model}", "{n_states}", t)
            for t in L.KOOPMAN_TABLES
        },
        summary=L.koopman_summary("{system}", "{model}", "{n_states}"),
    params:
        settings=lambda wc: settings("koopman", wc.system),
        lags=lambda wc: " ".join(lag_labels(wc.system)),
        outdir=lambda wc: L.koopman_dir(wc.system, wc.model, wc.n_states),
    log:
        log_path("koopman", "{system}/{model}-s{n_states}"),
    benchmark:
        bench_path("koopman", "{system}/{model}-s{n_states}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        GDYN_ENV
    shell:
        # --probs and --lags are in the same (sorted) lag order.
        "gdyn koopman {params.outdir} --probs {input.probs} --lags {params.lags} "
        "--model {wildcards.model} --n-states {wildcards.n_states} "
        "--settings {params.settings} > {log} 2>&1"
