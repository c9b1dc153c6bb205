# One model per (system, model kind, n_states, lag): one rule per model kind. Each job
# trains every seed of train.seeds and keeps the best; its states are ordered by population
# at the first lag of the grid (the reference) and mapped onto the reference's states at
# every other lag (--reference: the reference model's probs_val.npz; gdyn.train.align).
# Every other lag also starts from the reference's weights (--init-from its model.pt, a warm
# start: gdyn.train.warmstart); the lags still train in parallel once the reference is done.
#
# The two rules' shell texts are the same (train_vampnet passes graphs="").


rule train_gdynet:
    """GDyNet: graph convolutions over each frame's neighbour graphs (the graph stores, or
    graphs built on the fly with graph.store: false)."""
    input:
        splits=lambda wc: split_files(wc.system),
        graphs=train_graph_inputs,
        reference=lambda wc: reference_probs(wc, "gdynet"),
        init=lambda wc: reference_model(wc, "gdynet"),  # warm start (issue 24)
        sources=lambda wc: sources(wc.system),  # see traj_sources (common.smk)
    output:
        **model_outputs("gdynet"),
    params:
        splits=split_args,  # --train A.npz ... --val ... --test ...
        graphs=graph_args,  # --train-graphs DIR ... (or --graph JSON: graph.store false)
        reference=lambda wc: reference_arg(wc, "gdynet"),
        init=lambda wc: init_arg(wc, "gdynet"),
        settings=lambda wc: train_settings(wc.system),  # the whole train section
        lag_ps=lag_ps,  # the lag as a number, from train/lags_ps (common.smk)
        outdir=lambda wc: L.model_dir(wc.system, "gdynet", wc.n_states, wc.lag),
        kind="gdynet",
    log:
        log_path("train_gdynet", "{system}/s{n_states}-lag{lag}"),
    benchmark:
        bench_path("train_gdynet", "{system}/s{n_states}-lag{lag}")
    threads: EXECUTION.train_threads
    resources:
        mem_mb=train_mem_mb("gdynet"),
        **TRAIN_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn train {params.kind} {params.outdir:q} --n-states {wildcards.n_states} "
        "--lag-ps {params.lag_ps} {params.splits} {params.graphs} {params.reference} "
        "{params.init} --settings {params.settings} --threads {threads} > {log:q} 2>&1"


rule train_vampnet:
    """Global VAMPnet: a feed-forward network on the targets' positions (no graphs)."""
    input:
        splits=lambda wc: split_files(wc.system),
        reference=lambda wc: reference_probs(wc, "vampnet"),
        init=lambda wc: reference_model(wc, "vampnet"),  # warm start (issue 24)
        sources=lambda wc: sources(wc.system),  # see traj_sources (common.smk)
    output:
        **model_outputs("vampnet"),
    params:
        splits=split_args,
        graphs="",  # none: kept so that the shell text is the same as train_gdynet's
        reference=lambda wc: reference_arg(wc, "vampnet"),
        init=lambda wc: init_arg(wc, "vampnet"),
        settings=lambda wc: train_settings(wc.system),
        lag_ps=lag_ps,  # the lag as a number, from train/lags_ps (common.smk)
        outdir=lambda wc: L.model_dir(wc.system, "vampnet", wc.n_states, wc.lag),
        kind="vampnet",
    log:
        log_path("train_vampnet", "{system}/s{n_states}-lag{lag}"),
    benchmark:
        bench_path("train_vampnet", "{system}/s{n_states}-lag{lag}")
    threads: EXECUTION.train_threads
    resources:
        mem_mb=train_mem_mb("vampnet"),
        **TRAIN_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn train {params.kind} {params.outdir:q} --n-states {wildcards.n_states} "
        "--lag-ps {params.lag_ps} {params.splits} {params.graphs} {params.reference} "
        "{params.init} --settings {params.settings} --threads {threads} > {log:q} 2>&1"
