package org.strongroom;

import java.io.IOException;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletResponse;

/**
 * Every page of a Spark web UI answered 403, to everyone.
 *
 * <p>A standalone master's and worker's web UIs cannot be switched off; they list every
 * application, its executors and their logs, and offer to kill them. Strongroom's cluster
 * needs none of it, so the master and workers run with {@code spark.ui.filters} naming this
 * filter: the pages stay closed whoever asks.
 */
public final class StrongroomClosedUi implements Filter {
  @Override
  public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
      throws IOException, ServletException {
    HttpServletResponse http = (HttpServletResponse) response;
    http.setContentType("text/plain");
    http.sendError(HttpServletResponse.SC_FORBIDDEN,
        "this Spark cluster's web UI is closed (Strongroom)");
  }
}
