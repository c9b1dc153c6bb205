# Temperature series (issue 25, gdyn.temperatures): one set of states trained on every
# temperature pooled; K, kinetics and rates per temperature; the Arrhenius fit and figure.
# Nothing here engages for a system that is not a series (the default toy is not).
rule arrhenius:
    """K per temperature at the pooled model's analysis lag; rates and Arrhenius fits."""
    input:
        summary=L.koopman_summary("{system}", "{model}", "{n_states}"),
        probs=lambda wc: candidate_probs(wc.system, wc.model, wc.n_states, "test"),
        pieces=lambda wc: split_files(wc.system, ["test"]),
    output:
        csv=L.koopman_file("{system}", "{model}", "{n_states}", "arrhenius.csv"),
        json=L.koopman_file("{system}", "{model}", "{n_states}", "arrhenius.json"),
        pdf=L.koopman_file("{system}", "{model}", "{n_states}", "arrhenius.pdf"),
        png=L.koopman_file("{system}", "{model}", "{n_states}", "arrhenius.png"),
    params:
        settings=lambda wc: settings("koopman", wc.system),
        temps=lambda wc: shlex.quote(json.dumps(temperature_of(wc.system), sort_keys=True)),
        toy=lambda wc: (f"--pieces {' '.join(split_files(wc.system, ['test']))} --simulate "
                        + settings("simulate", wc.system)) if wc.system in SIMULATED else "",
        outdir=lambda wc: L.koopman_dir(wc.system, wc.model, wc.n_states),
        label=lambda wc: shlex.quote(str(SYSTEMS[wc.system].get("data_label", ""))),
    log:
        log_path("arrhenius", "{system}/{model}-s{n_states}"),
    benchmark:
        bench_path("arrhenius", "{system}/{model}-s{n_states}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        GDYN_ENV
    shell:
        "gdyn arrhenius {params.outdir:q} --summary {input.summary:q} "
        "--temperatures {params.temps} --settings {params.settings} {params.toy} "
        "--figure {output.pdf:q} --png {output.png:q} --data-label {params.label} > {log:q} 2>&1"


rule arrhenius_figure:
    """The analysed model's Arrhenius figure under results/figures/ (one per system)."""
    input:
        pdf=lambda wc: L.koopman_file(wc.system, *analysed(wc.system), "arrhenius.pdf"),
        png=lambda wc: L.koopman_file(wc.system, *analysed(wc.system), "arrhenius.png"),
    output:
        pdf=L.figure("{system}_arrhenius", "pdf"),
        png=L.figure("{system}_arrhenius", "png"),
    log:
        log_path("arrhenius_figure", "{system}"),
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        GDYN_ENV
    shell:
        # copy under a temporary name, then rename: the figure appears whole or not at all
        "(cp {input.pdf:q} {output.pdf:q}.tmp && mv {output.pdf:q}.tmp {output.pdf:q} && "
        "cp {input.png:q} {output.png:q}.tmp && mv {output.png:q}.tmp {output.png:q}) "
        "> {log:q} 2>&1"
