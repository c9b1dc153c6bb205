# One model per (system, n_states, lag): GDyNet and the global VAMPnet baseline. Each job
# trains every seed of train.seeds and keeps the best; its states are ordered by population
# at the first lag of the grid (the reference) and mapped onto the reference's states at
# every other lag (--reference: the reference model's probs_val.npz; gdyn.train.align).


rule train_gdynet:
    """Train one GDyNet by maximising VAMP-2 at lag {lag}; write state probabilities."""
    input:
        splits=lambda wc: split_files(wc.system),
        graphs=train_graph_inputs,
        reference=lambda wc: reference_probs(wc, "gdynet"),
        sources=lambda wc: sources(wc.system),  # see traj_sources (common.smk)
    output:
        **model_outputs("gdynet"),
    params:
        splits=split_args,
        graphs=graph_args,
        reference=lambda wc: reference_arg(wc, "gdynet"),
        settings=lambda wc: settings("train", wc.system),
        outdir=lambda wc: L.model_dir(wc.system, "gdynet", wc.n_states, wc.lag),
    log:
        log_path("train_gdynet", "{system}/s{n_states}-lag{lag}"),
    benchmark:
        bench_path("train_gdynet", "{system}/s{n_states}-lag{lag}")
    threads: int(EXECUTION.get("train_threads", 1))
    resources:
        mem_mb=train_mem_mb("gdynet"),
        **TRAIN_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn train gdynet {params.outdir} --n-states {wildcards.n_states} "
        "--lag {wildcards.lag} {params.splits} {params.graphs} {params.reference} "
        "--settings {params.settings} --threads {threads} > {log} 2>&1"


rule train_vampnet:
    """Train the global VAMPnet baseline (fully connected, target positions in the cell)."""
    input:
        splits=lambda wc: split_files(wc.system),
        reference=lambda wc: reference_probs(wc, "vampnet"),
        sources=lambda wc: sources(wc.system),  # see traj_sources (common.smk)
    output:
        **model_outputs("vampnet"),
    params:
        splits=split_args,
        reference=lambda wc: reference_arg(wc, "vampnet"),
        settings=lambda wc: settings("train", wc.system),
        outdir=lambda wc: L.model_dir(wc.system, "vampnet", wc.n_states, wc.lag),
    log:
        log_path("train_vampnet", "{system}/s{n_states}-lag{lag}"),
    benchmark:
        bench_path("train_vampnet", "{system}/s{n_states}-lag{lag}")
    threads: int(EXECUTION.get("train_threads", 1))
    resources:
        mem_mb=train_mem_mb("vampnet"),
        **TRAIN_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn train vampnet {params.outdir} --n-states {wildcards.n_states} "
        "--lag {wildcards.lag} {params.splits} {params.reference} "
        "--settings {params.settings} --threads {threads} > {log} 2>&1"
