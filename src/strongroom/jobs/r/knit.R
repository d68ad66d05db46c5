# Render an R Markdown action's document inside a job's sandbox: `run: rmarkdown doc.Rmd`.
#
# The runner starts `Rscript /job-lib/strongroom_knit.R doc.Rmd` in the repository (R's
# profile has loaded the in-job library and its monitor first, as for any R script). knitr
# runs the document's chunks in the repository's folder, as Rscript runs a script, and writes
# Markdown to output/<doc>.md and the chunks' figures to output/<doc>_files/<chunk>-<n>.png;
# both leave only if declared, through the output checkers. No other program is started (no
# pandoc: the document is rendered to Markdown, which the checkers read as text), and nothing
# is written outside output/ but knitr's scratch in the capped /tmp.
local({
  args <- commandArgs(trailingOnly = TRUE)
  if (length(args) != 1L || !grepl("\\.Rmd$", args[[1L]])) {
    stop("the R Markdown runner takes one .Rmd document", call. = FALSE)
  }
  if (!requireNamespace("knitr", quietly = TRUE)) {
    stop(paste("knitr is not installed here, so an 'rmarkdown' action cannot run: the",
               "custodian installs r-cran-knitr"), call. = FALSE)
  }
  document <- normalizePath(args[[1L]], mustWork = TRUE)
  stem <- sub("\\.Rmd$", "", basename(document))
  root <- getwd()
  knitr::opts_knit$set(root.dir = root)  # the chunks run where a script would
  # a chunk that fails stops the document, as an error stops a script (knitr would go on)
  knitr::opts_chunk$set(fig.path = paste0(stem, "_files/"), dev = "png", error = FALSE)
  setwd("output")
  on.exit(setwd(root))
  invisible(knitr::knit(document, output = paste0(stem, ".md"), quiet = TRUE,
                        envir = globalenv()))
})
