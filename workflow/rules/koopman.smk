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
        temperatures=lambda wc: temperatures_arg(wc.system),  # a series' (common.smk)
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
        # each probs file records its lag
        "gdyn koopman {params.outdir:q} --probs {input.probs:q} "
        "--model {wildcards.model} --n-states {wildcards.n_states} "
        "--settings {params.settings} {params.temperatures} > {log:q} 2>&1"


# Model selection (issue 16): n_states and tau* by the CK criterion, whenever a system
# trains several state counts of its analysed model kind or sets koopman.n_states: auto.
# The selected candidate's Koopman outputs go to results/koopman/{system}/{model}-sauto/
# (select_koopman), which the analyses and figures of n_states: auto read.
ruleorder: select_koopman > koopman


rule select:
    """Choose n_states and tau*: the smallest state count and lag whose CK test passes."""
    input:
        summaries=lambda wc: selection_summaries(wc.system),
        configs=lambda wc: selection_configs(wc.system),
    output:
        json=L.selection("{system}", "json"),
        csv=L.selection("{system}", "csv"),
        pdf=L.selection_figure("{system}", "pdf"),
        png=report(
            L.selection_figure("{system}", "png"),
            caption="../report/selection.rst",
            category="Model selection",
            labels={"item": "model selection", "system": "{system}"},
        ),
    params:
        settings=lambda wc: settings("koopman", wc.system),
        label=lambda wc: shlex.quote(str(SYSTEMS[wc.system].get("data_label", ""))),
    log:
        log_path("select", "{system}"),
    benchmark:
        bench_path("select", "{system}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        GDYN_ENV
    shell:
        "gdyn select {output.json:q} --csv {output.csv:q} --summaries {input.summaries:q} "
        "--configs {input.configs:q} --settings {params.settings} --figure {output.pdf:q} "
        "--png {output.png:q} --data-label {params.label} > {log:q} 2>&1"


rule select_koopman:
    """The selected candidate's Koopman outputs at the selected tau* (n_states: auto)."""
    input:
        selection=L.selection("{system}", "json"),
        probs=lambda wc: candidate_probs(wc.system, wc.model, L.AUTO, "test"),
    output:
        **{
            t: L.koopman_table("{system}", "{model}", L.AUTO, t)
            for t in L.KOOPMAN_TABLES
        },
        summary=L.koopman_summary("{system}", "{model}", L.AUTO),
    params:
        settings=lambda wc: settings("koopman", wc.system),
        outdir=lambda wc: L.koopman_dir(wc.system, wc.model, L.AUTO),
    log:
        log_path("select_koopman", "{system}/{model}"),
    benchmark:
        bench_path("select_koopman", "{system}/{model}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        GDYN_ENV
    shell:
        "gdyn select-koopman {params.outdir:q} --selection {input.selection:q} "
        "--probs {input.probs:q} --settings {params.settings} > {log:q} 2>&1"
