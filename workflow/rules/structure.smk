# State-weighted structure and transport of the analysed model (koopman.model, n_states) at
# tau*: one rule per analysis, each calling its `gdyn` subcommand (gdyn.cli.analysis).
#
# Every analysis but charge reads the same inputs: the test split pieces, the model's
# probs_test.npz at every lag (its summary.json names the one at tau*) and the raw
# trajectories they come from (see traj_sources in common.smk). `params.settings` is the
# part of the config the command reads, as JSON (config_json): Snakemake compares it with
# the value recorded for the outputs, so an edit to it reruns the analysis and what depends
# on it. Paths reach the shell quoted ({...:q}).


rule rdf:
    """State-weighted RDF and coordination number of each element around the targets (Eq. 12)."""
    input:
        test=test_pieces,
        probs=analysed_probs,
        summary=analysed_summary,
        sources=test_sources,
    output:
        L.structure_file("{system}", "rdf.csv"),
    params:
        settings=config_json("structure", "rdf"),  # elements, r_max_A, n_bins, stride
    log:
        log_path("rdf", "{system}"),
    benchmark:
        bench_path("rdf", "{system}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        GDYN_ENV
    shell:
        "gdyn rdf {output:q} --test {input.test:q} --probs {input.probs:q} "
        "--summary {input.summary:q} --settings {params.settings:q} > {log:q} 2>&1"


rule charge:
    """Charge integral of each state's first solvation shell, from rdf.csv (Supp. Note 3)."""
    input:
        rdf=L.structure_file("{system}", "rdf.csv"),
    output:
        L.structure_file("{system}", "charge.csv"),
    params:
        settings=config_json("structure", "charge"),  # center, charges, reference, r_star_A
    log:
        log_path("charge", "{system}"),
    benchmark:
        bench_path("charge", "{system}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=60,
    conda:
        GDYN_ENV
    shell:
        "gdyn charge {input.rdf:q} {output:q} --settings {params.settings:q} > {log:q} 2>&1"


rule profile:
    """Distribution of each state's targets along one cell axis (Fig. 3)."""
    input:
        test=test_pieces,
        probs=analysed_probs,
        summary=analysed_summary,
        sources=test_sources,
    output:
        L.structure_file("{system}", "profile.csv"),
    params:
        settings=config_json("structure", "profile"),  # axis, n_bins
    log:
        log_path("profile", "{system}"),
    benchmark:
        bench_path("profile", "{system}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        GDYN_ENV
    shell:
        "gdyn profile {output:q} --test {input.test:q} --probs {input.probs:q} "
        "--summary {input.summary:q} --settings {params.settings:q} > {log:q} 2>&1"


rule snapshot:
    """One test frame with each target's state probabilities (extxyz + PNG; Figs. 2-4)."""
    input:
        test=test_pieces,
        probs=analysed_probs,
        summary=analysed_summary,
        sources=test_sources,
    output:
        extxyz=L.structure_file("{system}", "snapshot.extxyz"),
        png=L.structure_file("{system}", "snapshot.png"),
    params:
        settings=config_json("structure", "snapshot_frame"),  # unset: frame 0
    log:
        log_path("snapshot", "{system}"),
    benchmark:
        bench_path("snapshot", "{system}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        GDYN_ENV
    shell:
        "gdyn snapshot {output.extxyz:q} --png {output.png:q} --test {input.test:q} "
        "--probs {input.probs:q} --summary {input.summary:q} --settings {params.settings:q} "
        "> {log:q} 2>&1"


rule positions:
    """Folded target positions with their state probabilities, of any trained (model,
    n_states) (Fig. 2 draws both model kinds); made when a figure asks for it."""
    input:
        test=test_pieces,
        probs=lambda wc: candidate_probs(wc.system, wc.model, wc.n_states, "test"),
        summary=lambda wc: L.koopman_summary(wc.system, wc.model, wc.n_states),
        sources=test_sources,
    output:
        L.positions("{system}", "{model}", "{n_states}"),
    log:
        log_path("positions", "{system}-{model}-s{n_states}"),
    benchmark:
        bench_path("positions", "{system}-{model}-s{n_states}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        GDYN_ENV
    shell:
        "gdyn positions {output:q} --test {input.test:q} --probs {input.probs:q} "
        "--summary {input.summary:q} > {log:q} 2>&1"


rule q3:
    """Steinhardt q3 of each state's targets (Supp. Fig. 2)."""
    input:
        test=test_pieces,
        probs=analysed_probs,
        summary=analysed_summary,
        sources=test_sources,
    output:
        L.structure_file("{system}", "q3.csv"),
    params:
        settings=config_json("structure", "q3"),  # element, n_neighbors, n_bins, stride
    log:
        log_path("q3", "{system}"),
    benchmark:
        bench_path("q3", "{system}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        GDYN_ENV
    shell:
        "gdyn q3 {output:q} --test {input.test:q} --probs {input.probs:q} "
        "--summary {input.summary:q} --settings {params.settings:q} > {log:q} 2>&1"


rule representative:
    """Each state's representative configuration and solvation shell (Fig. 4b); made when
    a figure asks for it. Shell radius: structure/representative, else charge.csv's r*."""
    input:
        test=test_pieces,
        probs=analysed_probs,
        summary=analysed_summary,
        sources=test_sources,
        charge=charge_if_on,
    output:
        L.structure_file("{system}", "representative.extxyz"),
    params:
        settings=config_json("structure", "representative"),  # shell_radius_A
    log:
        log_path("representative", "{system}"),
    benchmark:
        bench_path("representative", "{system}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        GDYN_ENV
    shell:
        "gdyn representative {output:q} --charge {input.charge:q} --test {input.test:q} "
        "--probs {input.probs:q} --summary {input.summary:q} --settings {params.settings:q} "
        "> {log:q} 2>&1"


rule conduction:
    """Transition MSDs, D_ij(tau*) and Nernst-Einstein shares per state pair (Eqs. 13-16);
    per-state charges from charge.csv when structure/charge is set; a temperature series:
    per temperature, at each trajectory's temperature (a temperature_K column)."""
    input:
        test=test_pieces,
        probs=analysed_probs,
        summary=analysed_summary,
        sources=test_sources,
        charge=charge_if_on,
    output:
        diffusion=L.structure_file("{system}", "diffusion.csv"),
        conduction=L.structure_file("{system}", "conduction.csv"),
    params:
        # temperature_K, charges, msd_window, msd_points, volume_A3
        settings=config_json("conduction"),
        ci=config_json("koopman", "ci"),  # the confidence-interval groups
        temps=lambda wc: temperatures_arg(wc.system),  # a series: per temperature ("" otherwise)
    log:
        log_path("conduction", "{system}"),
    benchmark:
        bench_path("conduction", "{system}")
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        GDYN_ENV
    shell:
        "gdyn conduction {output.diffusion:q} {output.conduction:q} --charge {input.charge:q} "
        "--test {input.test:q} --probs {input.probs:q} --summary {input.summary:q} "
        "--settings {params.settings:q} --koopman-settings {params.ci:q} {params.temps} "
        "> {log:q} 2>&1"
