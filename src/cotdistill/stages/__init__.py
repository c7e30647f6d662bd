"""The pipeline's stages, each a thin driver ``f(run: RunDir, cfg: RunConfig)`` over the domain packages:
questions, generate, filter, train, eval, report (in ``cotdistill.report``), plus bench and the pipeline runner."""
