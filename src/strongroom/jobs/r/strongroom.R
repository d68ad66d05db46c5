# Strongroom's in-job library for R: the R face of strongroom.sdc (src/strongroom/sdc.py).
#
# A job's R script calls these functions to *ask* for an analysis of one of its inputs;
# nothing is computed here. Each call adds one line to the job's plan, the same line the
# Python library writes for the same call ({"output": ..., "analysis": {"kind": ..., ...}}),
# to the same file ($STRONGROOM_PLAN). The platform then runs the plan through the same
# output check, ledger and differencing as any analysis. The sandbox loads this file before
# the job's script (R_PROFILE_USER) and attaches `sdc` to the search path:
#
#     sdc$frequency("smokers", "cohort", "smoking")
#     sdc$logistic("diabetes_model", "cohort", diabetes ~ bmi + age + factor(sex))
#     cohort <- sdc$read("cohort")    # a data.table (data.table::fread of inputs/cohort.csv)
#
# It also reports the job's tries at the sandbox's walls (a network connection, starting a
# program) to the platform, as the Python monitor does (jobs/sitecustomize.py). The walls
# hold without it; this is how a try becomes an alert.

local({
  PLAN_ENV <- "STRONGROOM_PLAN"
  INPUTS_ENV <- "STRONGROOM_INPUTS"
  NAME <- "^[A-Za-z][A-Za-z0-9_]{0,62}$"
  # the analyses' fields that are lists (enclave/analyses/spec.py): always written as JSON
  # arrays, even of one value, as Python writes a list of one
  LISTS <- c("categorical", "covariates", "edges", "quantiles", "statistics", "traits",
             "variables")

  plan_error <- function(message) {
    stop(structure(class = c("strongroom_plan_error", "error", "condition"),
                   list(message = message, call = NULL)))
  }

  is_name <- function(x) is.character(x) && length(x) == 1L && !is.na(x) && grepl(NAME, x)

  field <- function(name, value) {
    if (name %in% LISTS) {
      if (is.list(value)) value <- unlist(value, use.names = FALSE)
      if (is.factor(value)) value <- as.character(value)
      return(I(value))
    }
    if (is.null(value) || is.list(value)) return(value)
    if (is.factor(value)) value <- as.character(value)
    if (length(value) != 1L) {
      plan_error(sprintf("%s must be one value, not %d (the fields that are lists: %s)",
                         name, length(value), paste(LISTS, collapse = ", ")))
    }
    value
  }

  not_finite <- function(v) {
    if (is.list(v)) return(any(vapply(v, not_finite, TRUE)))
    is.numeric(v) && any(!is.finite(v))
  }

  sdc <- new.env(parent = emptyenv())

  sdc$analysis <- function(output, kind, ...) {
    # Plan the analysis `kind` (any kind the platform runs) as the declared output `output`;
    # `...`: the analysis's specification as the API takes it.
    if (!is_name(output)) {
      plan_error(sprintf("%s is not an output name: letters, digits and '_', starting with a letter",
                         paste(deparse(output), collapse = " ")))
    }
    spec <- list(...)
    if (length(spec) && (is.null(names(spec)) || any(names(spec) == ""))) {
      plan_error(sprintf("the specification of '%s' names each of its fields (variable = \"bmi\")",
                         output))
    }
    if (anyDuplicated(c("kind", names(spec)))) {
      plan_error(sprintf("the specification of '%s' gives %s twice", output,
                         c("kind", names(spec))[anyDuplicated(c("kind", names(spec)))]))
    }
    if (not_finite(spec)) {
      plan_error(sprintf("the specification of '%s' holds NA, NaN or Inf; give numbers", output))
    }
    spec <- Map(field, names(spec), spec)
    analysis <- c(list(kind = kind), spec)
    analysis <- analysis[order(names(analysis))]
    if (!requireNamespace("jsonlite", quietly = TRUE)) {
      plan_error("the R package jsonlite is missing (Debian: r-cran-jsonlite)")
    }
    line <- tryCatch(
      jsonlite::toJSON(list(analysis = analysis, output = output), auto_unbox = TRUE,
                       digits = I(17), null = "null", na = "null"),
      error = function(e) plan_error(sprintf("the specification of '%s' is not plain JSON: %s",
                                             output, conditionMessage(e))))
    cat(line, "\n", sep = "", file = Sys.getenv(PLAN_ENV, "plan.jsonl"), append = TRUE)
    invisible(NULL)
  }

  sdc$input_path <- function(name) {
    # Where the input `name` is, as a CSV file (what `strongroom jobs dummy` downloads too).
    if (!is_name(name)) plan_error(sprintf("%s is not an input name", deparse(name)))
    path <- file.path(Sys.getenv(INPUTS_ENV, "inputs"), paste0(name, ".csv"))
    if (!file.exists(path)) {
      plan_error(sprintf("there is no input '%s': list it under the action's inputs in project.yaml",
                         name))
    }
    path
  }

  sdc$read <- function(name, na.strings = c("", "NA"), ...) {
    # The input `name` as a data.table (`...` to data.table::fread); an empty field is NA,
    # whatever the column's type.
    if (!requireNamespace("data.table", quietly = TRUE)) {
      stop("the R package data.table is missing (Debian: r-cran-data.table); ",
           "or read sdc$input_path(name) with utils::read.csv")
    }
    data.table::fread(sdc$input_path(name), na.strings = na.strings, ...)
  }

  sdc$frequency <- function(output, definition, variable, ...) {
    sdc$analysis(output, "frequency", definition = definition, variable = variable, ...)
  }
  sdc$crosstab <- function(output, definition, rows, columns, ...) {
    sdc$analysis(output, "crosstab", definition = definition, rows = rows, columns = columns,
                 ...)
  }
  sdc$summary <- function(output, definition, variables, ...) {
    sdc$analysis(output, "summary", definition = definition, variables = variables, ...)
  }
  sdc$histogram <- function(output, definition, variable, ...) {
    sdc$analysis(output, "histogram", definition = definition, variable = variable, ...)
  }
  sdc$correlation <- function(output, definition, variables, ...) {
    sdc$analysis(output, "correlation", definition = definition, variables = variables, ...)
  }
  sdc$sql <- function(output, query) sdc$analysis(output, "aggregate_sql", sql = query)

  # a model's terms: plain columns, and factor(x) for a categorical column
  terms_of <- function(rhs, what) {
    labels <- attr(stats::terms(stats::as.formula(call("~", rhs))), "term.labels")
    if (attr(stats::terms(stats::as.formula(call("~", rhs))), "intercept") != 1L) {
      plan_error(sprintf("the platform's %s model keeps its intercept: remove '- 1' or '+ 0'",
                         what))
    }
    covariates <- character()
    categorical <- character()
    for (label in labels) {
      term <- str2lang(label)
      if (is.name(term)) {
        covariates <- c(covariates, label)
      } else if (is.call(term) && identical(term[[1]], as.name("factor")) &&
                 length(term) == 2L && is.name(term[[2]])) {
        covariates <- c(covariates, as.character(term[[2]]))
        categorical <- c(categorical, as.character(term[[2]]))
      } else {
        plan_error(sprintf(paste0(
          "the term '%s' is not a column or factor(column): the platform's %s model takes ",
          "those only; for splines or interactions use sdc$glm (its formula), or derive ",
          "the column in the dataset definition"), label, what))
      }
    }
    list(covariates = covariates, categorical = categorical)
  }

  # categorical = only where the formula has factors (as a Python call leaves it out)
  factors <- function(found) {
    if (length(found$categorical)) list(categorical = found$categorical) else list()
  }

  model <- function(output, kind, definition, outcome, covariates, ...) {
    if (inherits(outcome, "formula")) {
      if (!missing(covariates)) {
        plan_error("give a formula or outcome and covariates, not both")
      }
      if (length(outcome) != 3L || !is.name(outcome[[2]])) {
        plan_error(sprintf("the %s formula is 'outcome ~ terms', with one column as outcome",
                           kind))
      }
      found <- terms_of(outcome[[3]], kind)
      return(do.call(sdc$analysis, c(
        list(output, kind, definition = definition, outcome = as.character(outcome[[2]]),
             covariates = found$covariates), factors(found), list(...))))
    }
    sdc$analysis(output, kind, definition = definition, outcome = outcome,
                 covariates = covariates, ...)
  }

  sdc$ols <- function(output, definition, outcome, covariates, ...) {
    # Linear regression: `outcome` and `covariates` (`categorical =`), or a formula
    # `y ~ a + b + factor(c)`.
    model(output, "ols", definition, outcome, covariates, ...)
  }
  sdc$logistic <- function(output, definition, outcome, covariates, ...) {
    # Logistic regression of a 0/1 outcome, as sdc$ols.
    model(output, "logistic", definition, outcome, covariates, ...)
  }

  surv <- function(lhs, kind) {
    if (!(is.call(lhs) && identical(lhs[[1]], as.name("Surv")) && length(lhs) == 3L &&
          is.name(lhs[[2]]) && is.name(lhs[[3]]))) {
      plan_error(sprintf("the %s formula is 'Surv(time, event) ~ ...', with columns", kind))
    }
    list(time = as.character(lhs[[2]]), event = as.character(lhs[[3]]))
  }

  survival <- function(output, kind, definition, time, event, ...) {
    if (inherits(time, "formula")) {
      found <- surv(time[[2]], kind)
      rhs <- time[[3]]
      more <- list(...)
      if (!identical(rhs, 1) && !is.name(rhs)) {
        plan_error(sprintf("the %s formula is 'Surv(time, event) ~ 1' or '~ group'", kind))
      }
      if (is.name(rhs)) more$group <- as.character(rhs)
      return(do.call(sdc$analysis, c(list(output, kind, definition = definition,
                                          time = found$time, event = found$event), more)))
    }
    sdc$analysis(output, kind, definition = definition, time = time, event = event, ...)
  }

  sdc$kaplan_meier <- function(output, definition, time, event, ...) {
    # Kaplan-Meier survival per interval of a grid (`group =`, `interval =`), or a formula
    # `Surv(time, event) ~ group`.
    survival(output, "kaplan_meier", definition, time, event, ...)
  }
  sdc$cumulative_incidence <- function(output, definition, time, event, ...) {
    # Competing risks (`event`: 0 censored, 1, 2 ... the cause), as sdc$kaplan_meier.
    survival(output, "cumulative_incidence", definition, time, event, ...)
  }
  sdc$cox <- function(output, definition, time, event, covariates, ...) {
    # A Cox model: `time`, `event`, `covariates` (`categorical =`), or a formula
    # `Surv(time, event) ~ a + factor(b)`.
    if (inherits(time, "formula")) {
      found <- surv(time[[2]], "cox")
      terms <- terms_of(time[[3]], "cox")
      return(do.call(sdc$analysis, c(
        list(output, "cox", definition = definition, time = found$time, event = found$event,
             covariates = terms$covariates), factors(terms), list(...))))
    }
    sdc$analysis(output, "cox", definition = definition, time = time, event = event,
                 covariates = covariates, ...)
  }
  sdc$glm <- function(output, definition, formula, ...) {
    # A generalised linear model written as the platform's formula (`family =`, ...): an R
    # formula is sent as written, with factor(x) as the platform's C(x); the platform's
    # splines are cr(x, df = k) and bs(x, df = k).
    if (inherits(formula, "formula")) {
      formula <- paste(deparse(formula, width.cutoff = 500L), collapse = " ")
      formula <- gsub("\\bfactor\\(", "C(", formula)
    }
    sdc$analysis(output, "glm", definition = definition, formula = formula, ...)
  }

  lockEnvironment(sdc, bindings = TRUE)

  # -- the monitor: tries at the walls, reported through the platform's pipe --------------
  fd <- suppressWarnings(as.integer(Sys.getenv("STRONGROOM_MONITOR_FD", "-1")))
  if (!is.na(fd) && fd >= 0L) {
    # utils first: loading it asks uname and which for its own settings (R's, not the job's)
    utils_ns <- asNamespace("utils")
    pipe_path <- sprintf("/proc/self/fd/%d", fd)
    open_file <- base::file
    tell <- function(wall, event, call) {
      what <- substr(paste(deparse(call, width.cutoff = 200L), collapse = " "), 1L, 200L)
      line <- paste0(wall, "\t", event, "\t", gsub("[\t\r\n]", " ", what), "\n")
      ok <- tryCatch({
        con <- open_file(pipe_path, open = "ab", raw = TRUE)
        writeBin(charToRaw(line), con)
        close(con)
        TRUE
      }, error = function(e) FALSE, warning = function(w) FALSE)
      # the report could not be made: the process ends rather than hide it
      if (!ok) quit(save = "no", status = 86L, runLast = FALSE)
    }
    watch <- function(ns, name, wall, when = TRUE) {
      if (!exists(name, envir = ns, inherits = FALSE)) return(invisible())
      f <- get(name, envir = ns, inherits = FALSE)
      if (!is.function(f) || is.primitive(f)) return(invisible())
      g <- f
      body(g) <- bquote({
        if (.(when)) .(tell)(.(wall), .(paste0("R.", name)), match.call())
        .(body(f))
      })
      locked <- bindingIsLocked(name, ns)
      if (locked) unlockBinding(name, ns)
      assign(name, g, envir = ns)
      if (locked) lockBinding(name, ns)
    }
    url_like <- quote(is.character(description) && grepl("^[A-Za-z][A-Za-z0-9+.-]*://",
                                                         description[1L]))
    base_ns <- baseenv()
    for (name in c("socketConnection", "url", "serverSocket", "socketAccept")) {
      watch(base_ns, name, "network")
    }
    watch(base_ns, "file", "network", url_like)
    watch(base_ns, "gzcon", "network", FALSE)
    for (name in c("system", "system2", "pipe")) watch(base_ns, name, "program")
    for (name in c("download.file", "make.socket", "nsl")) watch(utils_ns, name, "network")
    # packages that reach the network or start programs in their own C code, past base R's
    # functions (curl is in Debian's site library, beside knitr): their entry points are
    # watched as each namespace loads (a package's functions call one another through its
    # namespace, so curl_fetch_memory's new_handle() is the watched one too)
    own_code <- list(
      curl = list(network = c("new_handle", "nslookup", "has_internet", "curl",
                              "curl_fetch_memory", "curl_fetch_disk", "curl_fetch_stream",
                              "curl_fetch_multi", "curl_download", "curl_upload",
                              "multi_run", "multi_add", "curl_echo")),
      processx = list(program = c("run", "process", "conn_create_pipepair")),
      sys = list(program = c("exec_wait", "exec_background", "exec_internal",
                             "r_wait", "r_background", "r_internal")),
      RCurl = list(network = c("getURL", "getURLContent", "getForm", "postForm",
                               "curlPerform", "getCurlHandle")),
      httpuv = list(network = c("startServer", "startDaemonizedServer", "runServer")))
    for (package in names(own_code)) {
      setHook(packageEvent(package, "onLoad"), local({
        walls <- own_code[[package]]
        function(...) {
          ns <- asNamespace(list(...)[[1L]])
          for (wall in names(walls)) for (name in walls[[wall]]) watch(ns, name, wall)
        }
      }))
    }
  }

  attach(list(sdc = sdc), name = "strongroom", warn.conflicts = FALSE)
})
