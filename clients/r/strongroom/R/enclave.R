# The enclave and its checked outputs: definitions, analyses, release, downloads.

# the analyses' fields that are lists (src/strongroom/enclave/analyses/spec.py): always sent
# as JSON arrays, even of one value, as the in-job library sends them
LIST_FIELDS <- c("categorical", "covariates", "edges", "quantiles", "statistics", "traits",
                 "variables")

spec_body <- function(analysis) {
  if (!is.list(analysis) || is.null(names(analysis)) || any(!nzchar(names(analysis)))) {
    stop("the analysis is a named list: list(kind = \"crosstab\", definition = \"adults\", ...)",
         call. = FALSE)
  }
  for (name in intersect(names(analysis), LIST_FIELDS)) {
    value <- analysis[[name]]
    if (is.list(value)) value <- unlist(value, use.names = FALSE)
    if (is.factor(value)) value <- as.character(value)
    analysis[[name]] <- I(value)
  }
  analysis
}

as_output <- function(x) structure(x, class = c("strongroom_output", "list"))

print.strongroom_output <- function(x, ...) {
  cat(sprintf("<strongroom output %s> %s: %s, %s\n", x$id, x$kind %||% "output",
              x$verdict %||% "?", x$status %||% "?"))
  for (finding in x$findings) cat("  - ", finding$reason, "\n", sep = "")
  invisible(x)
}

`%||%` <- function(a, b) if (is.null(a)) b else a

#' The project's granted fields: their names, types and units, as a data.frame.
sr_schema <- function(client, project) {
  fields <- sr_request(client, "GET", sprintf("/projects/%s/schema", segment(project)))
  rows <- lapply(fields, function(f) {
    as.data.frame(lapply(f, function(v) if (is.null(v) || length(v) != 1L) NA else v),
                  stringsAsFactors = FALSE)
  })
  if (!length(rows)) return(data.frame())
  columns <- unique(unlist(lapply(rows, names)))
  do.call(rbind, lapply(rows, function(r) {
    r[setdiff(columns, names(r))] <- NA
    r[columns]
  }))
}

#' The project's dummy data (synthetic, with exactly its tables and columns), unzipped into
#' `folder`; the paths of its files. Read a CSV with
#' `data.table::fread(path, na.strings = c("", "NA"))` or `read.csv(path, na.strings = "")`.
sr_dummy <- function(client, project, folder = "dummy") {
  zipped <- tempfile(fileext = ".zip")
  on.exit(unlink(zipped))
  writeBin(bytes(client, sprintf("/projects/%s/dummy", segment(project))), zipped)
  dir.create(folder, showWarnings = FALSE, recursive = TRUE)
  utils::unzip(zipped, exdir = folder)
}

#' Define a dataset inside the enclave: one SELECT returning `pid`. The answer holds its
#' columns and whether it holds enough participants, never its rows.
sr_define <- function(client, project, name, sql) {
  sr_request(client, "POST", sprintf("/projects/%s/definitions", segment(project)),
             body = list(name = name, sql = paste(sql, collapse = "\n")))
}

sr_definitions <- function(client, project) {
  sr_request(client, "GET", sprintf("/projects/%s/definitions", segment(project)))
}

sr_drop <- function(client, project, name) {
  invisible(sr_request(client, "DELETE", sprintf("/projects/%s/definitions/%s",
                                                 segment(project), segment(name))))
}

#' Run an analysis (`list(kind = ..., definition = ..., ...)`, as the API's analyses
#' reference writes it); the answer is the checked output: its `id`, `verdict` and
#' `findings`, never its values. A list field given one value is sent as a list.
sr_analyse <- function(client, project, analysis, format = "json") {
  as_output(sr_request(client, "POST", sprintf("/projects/%s/analyses", segment(project)),
                       body = list(analysis = spec_body(analysis), format = format)))
}

sr_output <- function(client, output) {
  as_output(sr_request(client, "GET", sprintf("/outputs/%s", segment(output))))
}

#' Your outputs (of a project, in a state), as a list of outputs.
sr_outputs <- function(client, project = NULL, status = NULL) {
  lapply(sr_request(client, "GET", "/outputs",
                    params = list(queue = FALSE, project_id = project, status = status)),
         as_output)
}

#' Ask for release: at once for a `release` verdict; for `review`, say why it is safe and
#' needed (at least 20 characters) and two output checkers decide.
sr_request_release <- function(client, output, justification = NULL) {
  as_output(sr_request(client, "POST", sprintf("/outputs/%s/request", segment(output)),
                       body = list(justification = justification)))
}

sr_withdraw <- function(client, output) {
  as_output(sr_request(client, "POST", sprintf("/outputs/%s/withdraw", segment(output))))
}

#' A released output's bytes, exactly as checked (a raw vector; `file`: written there too).
sr_download <- function(client, output, file = NULL) {
  content <- bytes(client, sprintf("/outputs/%s/download", segment(output)))
  if (!is.null(file)) writeBin(content, file)
  invisible(content)
}

#' A released output as a labelled table: a row per group, a column per figure.
#'
#' A group column holding the data dictionary's meanings (`sex`: "Female", its code in
#' `sex_code`) becomes a factor whose levels are the meanings in the order of their codes,
#' and the data.frame's `labels` attribute maps each such column's codes to meanings. Hidden
#' figures are NA and named in the row's `suppressed` ("" when none). Margins are rows
#' whose group is "Total". The attribute
#' `output` says which output it is.
sr_table <- function(client, output) {
  content <- bytes(client, sprintf("/outputs/%s/table", segment(output)),
                   params = list(format = "csv"))
  text <- rawToChar(content)
  Encoding(text) <- "UTF-8"
  table <- utils::read.csv(text = text, na.strings = "", check.names = FALSE,
                           stringsAsFactors = FALSE, encoding = "UTF-8")
  labels <- list()
  for (column in names(table)) {
    code <- paste0(column, "_code")
    if (!code %in% names(table) || !is.character(table[[column]])) next
    pairs <- unique(data.frame(code = table[[code]], meaning = table[[column]],
                               stringsAsFactors = FALSE))
    number <- suppressWarnings(as.numeric(as.character(pairs$code)))
    pairs <- pairs[order(is.na(number), number, as.character(pairs$code)), , drop = FALSE]
    meanings <- unique(pairs$meaning[!is.na(pairs$meaning)])
    table[[column]] <- factor(table[[column]], levels = meanings)
    known <- pairs[!is.na(pairs$code) & !is.na(pairs$meaning), , drop = FALSE]
    labels[[column]] <- stats::setNames(known$meaning, as.character(known$code))
  }
  if ("suppressed" %in% names(table)) {
    table$suppressed <- ifelse(is.na(table$suppressed), "", as.character(table$suppressed))
  }
  attr(table, "labels") <- labels
  attr(table, "output") <- output
  table
}
