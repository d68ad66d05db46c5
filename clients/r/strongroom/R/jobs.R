# Jobs: the researcher's repository (project.yaml, the scripts, plans/ACTION.json from a
# dummy run) packed as the Python client packs it (src/strongroom/jobs/code.py), submitted,
# followed. Both runs' logs stay inside the enclave; only checked outputs come back.

# never packed: the researcher's own outputs, dummy data, environments, caches and IDE state
SKIPPED <- c(".git", "output", "dummy", ".venv", "venv", "__pycache__",
             ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache", "node_modules",
             ".Rproj.user")
ENDED <- c("finished", "failed", "refused")

as_job <- function(x) structure(x, class = c("strongroom_job", "list"))

print.strongroom_job <- function(x, ...) {
  cat(sprintf("<strongroom job %s> %s: %s\n", x$id, x$action, x$status))
  for (name in names(x$outputs)) cat("  output ", name, ": ", x$outputs[[name]], "\n", sep = "")
  for (reason in x$reasons) cat("  - ", reason, "\n", sep = "")
  invisible(x)
}

tracked <- function(folder) {
  listed <- tryCatch(suppressWarnings(system2("git", c("-C", shQuote(folder), "ls-files"),
                                              stdout = TRUE, stderr = FALSE)),
                     error = function(e) NULL)
  if (is.null(listed) || !is.null(attr(listed, "status"))) return(NULL)
  listed <- listed[nzchar(listed) & file.exists(file.path(folder, listed))]
  if (!length(listed)) return(NULL)
  plans <- list.files(file.path(folder, "plans"), pattern = "\\.json$")
  sort(unique(c(listed, if (length(plans)) file.path("plans", plans))))
}

#' The paths a job's code holds, from `folder`: the files git tracks (and the plans the dummy
#' runs wrote, committed or not) if it is a repository, else every plain file; never
#' `output/`, `dummy/`, environments, caches or RStudio's state.
sr_pack <- function(folder = ".", zipfile = NULL) {
  if (!dir.exists(folder)) stop(sprintf("there is no folder %s", folder), call. = FALSE)
  paths <- tracked(folder)
  if (is.null(paths)) {
    paths <- list.files(folder, recursive = TRUE, all.files = TRUE, no.. = TRUE)
    links <- nzchar(Sys.readlink(file.path(folder, paths)))
    parents <- strsplit(dirname(paths), "/", fixed = TRUE)
    skipped <- vapply(parents, function(p) any(p %in% SKIPPED), TRUE)
    paths <- sort(paths[!links & !skipped])
  }
  paths <- paths[!vapply(strsplit(paths, "/", fixed = TRUE), function(p) p[[1L]] %in% SKIPPED,
                         TRUE)]
  if (!"project.yaml" %in% paths) {
    stop(sprintf("%s holds no project.yaml at its top (the job's actions are declared there)",
                 folder), call. = FALSE)
  }
  archive <- zip_files(folder, paths)
  if (!is.null(zipfile)) writeBin(archive, zipfile)
  invisible(archive)
}

#' Run `action` of the repository's project.yaml next to the data: first on the dummy data,
#' then on the real data. `code`: the repository's folder, a zip of it, or its bytes. Run the
#' action on the dummy data first (`strongroom jobs run ACTION --dummy` writes
#' `plans/ACTION.json`, which is submitted with the code). The answer is the queued job.
sr_job_submit <- function(client, project, action, code = ".") {
  archive <- if (is.raw(code)) code else if (dir.exists(code)) sr_pack(code) else
    readBin(code, "raw", file.size(code))
  as_job(sr_request(client, "POST", sprintf("/projects/%s/pipeline-jobs", segment(project)),
                    body = list(action = action,
                                code = gsub("[\r\n]", "", jsonlite::base64_enc(archive)))))
}

#' A job: its `status` (queued, running, finished, failed, refused), `reasons`, `outputs`
#' (each output's name and checked output's id).
sr_job <- function(client, job) {
  as_job(sr_request(client, "GET", sprintf("/pipeline-jobs/%s", segment(job))))
}

sr_jobs <- function(client, project) {
  lapply(sr_request(client, "GET", sprintf("/projects/%s/pipeline-jobs", segment(project))),
         as_job)
}

#' The job once it has ended (an error if it has not within `timeout` seconds).
sr_job_wait <- function(client, job, timeout = 3600, every = 1) {
  if (is.list(job)) job <- job$id
  deadline <- Sys.time() + timeout
  repeat {
    found <- sr_job(client, job)
    if (found$status %in% ENDED) return(found)
    if (Sys.time() > deadline) {
      stop(sprintf("job %s is still %s after %s s", job, found$status, timeout), call. = FALSE)
    }
    Sys.sleep(every)
  }
}
