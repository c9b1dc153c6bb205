# Periodic M-nearest-neighbour graphs of the frames training reads (every
# train.frame_stride-th raw frame) of one split piece (gdyn.graph). Memory is bounded by
# 32 MiB chunks of frames, not by the trajectory length. The store format version is a
# param, so stores of an older format are rebuilt.
from gdyn.graph.store import FORMAT_VERSION as GRAPH_STORE_FORMAT


rule graphs:
    """Neighbour index (uint16) and distance (uint16, 2^-12 A steps) arrays (F', N', M)."""
    input:
        piece=L.split_piece("{system}", "{part}", "{traj}"),
        sources=lambda wc: traj_sources(wc.system, wc.traj),  # see common.smk
    output:
        directory(L.graph_store("{system}", "{part}", "{traj}")),
    params:
        n_neighbors=lambda wc: SYSTEMS[wc.system]["graph"]["n_neighbors"],
        prune=lambda wc: (
            f"--n-conv {SYSTEMS[wc.system]['train']['n_conv']}"
            if graph_settings(wc.system).prune
            else "--all-rows"
        ),
        frame_stride=lambda wc: SYSTEMS[wc.system]["train"]["frame_stride"],
        store_format=GRAPH_STORE_FORMAT,
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
        "gdyn graphs {input.piece:q} {output:q} --n-neighbors {params.n_neighbors} {params.prune} "
        "--frame-stride {params.frame_stride} --threads {threads} > {log:q} 2>&1"
