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


# train.per_temperature: true (a series only): the analysed model retrained on each
# temperature alone at the pooled model's analysis lag, and how far its states drift from
# the pooled model's (gdyn.koopman.drift). No job otherwise.
rule train_per_temperature:
    """The analysed model trained on one temperature's pieces alone, at the analysis lag of
    the pooled Koopman summary, its states mapped onto the pooled model's (alignment)."""
    input:
        summary=L.koopman_summary("{system}", "{model}", "{n_states}"),
        # the pooled model's probs_val.npz at every lag (the analysis lag's is the reference)
        reference=lambda wc: candidate_probs(wc.system, wc.model, wc.n_states, "val"),
        splits=lambda wc: temperature_split_files(wc.system, wc.temperature),
        graphs=temperature_graph_inputs,
        sources=temperature_sources,  # see traj_sources (common.smk)
    output:
        **per_temperature_model_outputs(),
    params:
        splits=temperature_split_args,  # --train A.npz ... --val ... --test ...
        graphs=temperature_graph_args,  # --train-graphs DIR ... | --graph JSON | ""
        settings=lambda wc: train_settings(wc.system),
        outdir=lambda wc: L.per_temperature_dir(wc.system, wc.model, wc.n_states,
                                                wc.temperature),
    log:
        log_path("train_per_temperature", "{system}/{model}-s{n_states}-T{temperature}"),
    benchmark:
        bench_path("train_per_temperature", "{system}/{model}-s{n_states}-T{temperature}")
    threads: EXECUTION.train_threads
    resources:
        mem_mb=per_temperature_mem_mb,
        **TRAIN_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn train-per-temperature {wildcards.model} {params.outdir:q} "
        "--summary {input.summary:q} {params.splits} {params.graphs} "
        "--settings {params.settings} --threads {threads} > {log:q} 2>&1"


rule per_temperature:
    """Per temperature: argmax agreement and membership overlap of the retrained model with
    the pooled one on that temperature's test frames, and both slowest timescales."""
    input:
        summary=L.koopman_summary("{system}", "{model}", "{n_states}"),
        probs=lambda wc: candidate_probs(wc.system, wc.model, wc.n_states, "test"),
        per_temperature=per_temperature_probs,
    output:
        csv=L.koopman_file("{system}", "{model}", "{n_states}", "per_temperature.csv"),
    params:
        settings=lambda wc: settings("koopman", wc.system),
        temps=lambda wc: shlex.quote(json.dumps(temperature_of(wc.system), sort_keys=True)),
    log:
        log_path("per_temperature", "{system}/{model}-s{n_states}"),
    benchmark:
        bench_path("per_temperature", "{system}/{model}-s{n_states}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        GDYN_ENV
    shell:
        "gdyn per-temperature {output.csv:q} --summary {input.summary:q} "
        "--per-temperature {input.per_temperature:q} --temperatures {params.temps} "
        "--settings {params.settings} > {log:q} 2>&1"
