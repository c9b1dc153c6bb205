# Periodic M-nearest-neighbour graph of every frame of one split piece (gdyn.graph).
# Memory is bounded by 32 MiB chunks of frames, not by the trajectory length.


rule graphs:
    """Neighbour index (int32) and distance (float32) arrays (F, N', M), memory-mapped."""
    input:
        piece=L.split_piece("{system}", "{part}", "{traj}"),
        sources=lambda wc: traj_sources(wc.system, wc.traj),  # see common.smk
    output:
        directory(L.graph_store("{system}", "{part}", "{traj}")),
    params:
        n_neighbors=lambda wc: SYSTEMS[wc.system]["graph"]["n_neighbors"],
        prune=lambda wc: (
            f"--n-conv {SYSTEMS[wc.system]['train'].get('n_conv', 3)}"
            if SYSTEMS[wc.system]["graph"].get("prune", True)
            else "--all-rows"
        ),
    log:
        log_path("graphs", "{system}/{part}/{traj}"),
    benchmark:
        bench_path("graphs", "{system}/{part}/{traj}")
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,
    conda:
        GDYN_ENV
    shell:
        "gdyn graphs {input.piece} {output} --n-neighbors {params.n_neighbors} {params.prune} "
        "--threads {threads} > {log} 2>&1"
