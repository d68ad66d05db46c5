# The connection and its one way of asking: the R face of strongroom.client.Client (Python),
# with a project's API token. Every answer that is not a success becomes an R error of class
# `strongroom_error` carrying the server's `status`, `error` and `reasons`; network and TLS
# failures are curl's own errors. The server's certificate is always verified: against the
# system's CAs, or the CA file given (a self-signed server's certificate). There is no way
# to turn verification off.

USER_AGENT <- "strongroom-r-client/0.1.0"

#' Connect to a Strongroom server with a project's API token.
#'
#' `url`: the server's address (https://...); `token`: the token's secret (`srt_...`, from
#' `strongroom token issue PRJ --preset study` or the console); `ca_file`: a CA (or the
#' server's self-signed certificate) to verify the server against, else the system's CAs;
#' `interface`: the source address to connect from, on a machine with several networks
#' (tokens work only from the institution's registered networks).
#' The token is kept out of the object's printed form.
sr_connect <- function(url = Sys.getenv("STRONGROOM_URL"),
                       token = Sys.getenv("STRONGROOM_TOKEN"),
                       ca_file = Sys.getenv("STRONGROOM_CA", ""), timeout = 300,
                       interface = NULL) {
  if (!is.character(url) || length(url) != 1L || !nzchar(url)) {
    stop("give the server's address (url = \"https://...\", or STRONGROOM_URL)", call. = FALSE)
  }
  if (!grepl("^https://", url)) {
    stop("the server's address must start with https:// (the API is served over TLS only)",
         call. = FALSE)
  }
  if (!is.character(token) || length(token) != 1L || !nzchar(token)) {
    stop(paste("give the project's API token (token = \"srt_...\", or STRONGROOM_TOKEN):",
               "issue it with 'strongroom token issue PRJ --preset study' or in the console"),
         call. = FALSE)
  }
  if (is.null(ca_file) || identical(ca_file, "")) {
    ca_file <- NULL
  } else if (!file.exists(ca_file)) {
    stop(sprintf(paste("the CA file %s does not exist (give the certificate the server's",
                       "operator gave you, or leave ca_file out to use the system's CAs)"),
                 ca_file), call. = FALSE)
  } else {
    ca_file <- normalizePath(ca_file)
  }
  secret <- token
  structure(list(url = sub("/+$", "", url), ca_file = ca_file, timeout = timeout,
                 interface = interface,
                 authorization = function() paste("Bearer", secret)),
            class = "strongroom_client")
}

print.strongroom_client <- function(x, ...) {
  cat("<strongroom client> ", x$url, "\n  token: (hidden)\n  CA: ",
      if (is.null(x$ca_file)) "the system's CAs" else x$ca_file, "\n", sep = "")
  invisible(x)
}

segment <- function(value) {
  # one path segment: an id can never reach another route ('/' and '..' are escaped)
  curl::curl_escape(as.character(value))
}

query <- function(params) {
  params <- params[!vapply(params, is.null, TRUE)]
  if (!length(params)) return("")
  values <- vapply(params, function(v) {
    if (is.logical(v)) v <- if (isTRUE(v)) "true" else "false"
    curl::curl_escape(as.character(v))
  }, "")
  paste0("?", paste(names(params), values, sep = "=", collapse = "&"))
}

handle <- function(client, method, body = NULL, accept = "application/json") {
  h <- curl::new_handle()
  curl::handle_setopt(h, customrequest = method, followlocation = 0L,
                      ssl_verifypeer = 1L, ssl_verifyhost = 2L,
                      timeout = client$timeout, useragent = USER_AGENT)
  if (!is.null(client$ca_file)) curl::handle_setopt(h, cainfo = client$ca_file)
  if (!is.null(client$interface)) curl::handle_setopt(h, interface = client$interface)
  headers <- list(Authorization = client$authorization(), Accept = accept)
  if (!is.null(body)) {
    headers[["Content-Type"]] <- "application/json"
    curl::handle_setopt(h, postfields = body)
  } else if (method %in% c("POST", "PUT", "PATCH")) {
    curl::handle_setopt(h, postfields = "")
  }
  do.call(curl::handle_setheaders, c(list(h), headers))
  h
}

strongroom_error <- function(status, error, reasons, retry_after = NULL) {
  message <- if (length(reasons)) paste(reasons, collapse = "; ") else
    sprintf("HTTP %d (%s)", status, error)
  structure(class = c("strongroom_error", "error", "condition"),
            list(message = message, call = NULL, status = status, error = error,
                 reasons = reasons, retry_after = retry_after))
}

format.strongroom_error <- function(x, ...) {
  sprintf("refused (%d %s): %s", x$status, x$error, conditionMessage(x))
}

refusal <- function(response) {
  status <- response$status_code
  error <- sprintf("http-%d", status)
  reasons <- character()
  text <- rawToChar(response$content)
  Encoding(text) <- "UTF-8"
  body <- tryCatch(jsonlite::fromJSON(text, simplifyVector = FALSE), error = function(e) NULL)
  if (is.list(body) && !is.null(names(body))) {
    if (!is.null(body$error)) error <- as.character(body$error)
    if (is.list(body$reasons)) reasons <- vapply(body$reasons, as.character, "")
  }
  if (!length(reasons)) {
    reasons <- substr(trimws(text), 1L, 500L)
    if (!nzchar(reasons)) reasons <- sprintf("HTTP %d", status)
  }
  headers <- curl::parse_headers_list(response$headers)
  retry <- headers[["retry-after"]]
  retry <- if (!is.null(retry) && grepl("^[0-9]+$", retry)) as.integer(retry) else NULL
  strongroom_error(status, error, reasons, retry)
}

fetch <- function(client, method, path, body = NULL, params = list(),
                  accept = "application/json") {
  json <- if (is.null(body)) NULL else
    jsonlite::toJSON(body, auto_unbox = TRUE, null = "null", na = "null", digits = NA)
  h <- handle(client, method, if (is.null(json)) NULL else as.character(json), accept)
  response <- curl::curl_fetch_memory(paste0(client$url, path, query(params)), handle = h)
  if (response$status_code < 200L || response$status_code >= 300L) stop(refusal(response))
  response
}

#' Send one request; its JSON answer parsed (objects as named lists, arrays of plain values
#' as vectors), `NULL` when empty. `body`: a list sent as JSON. A refusal is an R error of
#' class `strongroom_error` with the server's `status`, `error` and `reasons`.
sr_request <- function(client, method, path, body = NULL, params = list()) {
  response <- fetch(client, toupper(method), path, body, params)
  if (response$status_code == 204L || !length(response$content)) return(NULL)
  text <- rawToChar(response$content)
  Encoding(text) <- "UTF-8"
  tryCatch(jsonlite::fromJSON(text, simplifyVector = TRUE, simplifyDataFrame = FALSE,
                              simplifyMatrix = FALSE),
           error = function(e) stop(strongroom_error(
             response$status_code, "bad-answer",
             sprintf("%s %s answered something other than JSON", method, path))))
}

bytes <- function(client, path, params = list()) {
  fetch(client, "GET", path, params = params, accept = "*/*")$content
}

#' Who the token is, and what it may do.
sr_me <- function(client) sr_request(client, "GET", "/auth/me")
