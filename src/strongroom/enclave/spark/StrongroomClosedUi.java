package org.strongroom;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.HexFormat;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;

/**
 * Every page of a Spark web UI answered 403, to everyone without the cluster's secret.
 *
 * <p>A standalone master's and worker's web UIs cannot be switched off; they list every
 * application, its executors and their logs, and offer to kill them. Strongroom's cluster
 * needs none of it, so the master and workers run with {@code spark.ui.filters} naming this
 * filter: the pages stay closed whoever asks.
 *
 * <p>One exception, so that a driver can check the whole cluster before it starts: a GET
 * signed with the cluster's {@code spark.authenticate.secret} (HMAC-SHA256 of
 * {@code "strongroom-ui:" + moment + ":" + path}, the moment in Unix seconds within two
 * minutes of this machine's clock) may read {@code /json/} (the master's list of workers and
 * their UI addresses) and {@code /strongroom/settings} (the settings this JVM runs with that
 * the walls depend on). Nothing else opens, signed or not.
 */
public final class StrongroomClosedUi implements Filter {
  static final String PROOF = "X-Strongroom-Proof";
  static final String MOMENT = "X-Strongroom-Moment";
  static final long WINDOW_SECONDS = 120;
  static final String[] SETTINGS = {
    "spark.master.rest.enabled", "spark.master.rest.host", "spark.master.rest.port",
    "spark.ui.filters", "spark.authenticate", "spark.network.crypto.enabled",
  };

  @Override
  public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
      throws IOException, ServletException {
    HttpServletRequest asked = (HttpServletRequest) request;
    HttpServletResponse http = (HttpServletResponse) response;
    String path = asked.getRequestURI();
    if ("GET".equals(asked.getMethod()) && asked.getQueryString() == null && signed(asked, path)) {
      if ("/strongroom/settings".equals(path)) {
        http.setContentType("application/json");
        http.getWriter().write(settings());
        return;
      }
      if ("/json/".equals(path) || "/json".equals(path)) {
        chain.doFilter(request, response);
        return;
      }
    }
    http.setContentType("text/plain");
    http.sendError(HttpServletResponse.SC_FORBIDDEN,
        "this Spark cluster's web UI is closed (Strongroom)");
  }

  /** Whether the request carries a proof, made with the cluster's secret, for this path now. */
  static boolean signed(HttpServletRequest asked, String path) {
    String secret = System.getProperty("spark.authenticate.secret");
    String moment = asked.getHeader(MOMENT);
    String proof = asked.getHeader(PROOF);
    if (secret == null || secret.isEmpty() || moment == null || proof == null) {
      return false;
    }
    long then;
    try {
      then = Long.parseLong(moment);
    } catch (NumberFormatException e) {
      return false;
    }
    if (Math.abs(System.currentTimeMillis() / 1000 - then) > WINDOW_SECONDS) {
      return false;
    }
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
      byte[] expected = HexFormat.of().formatHex(mac.doFinal(
          ("strongroom-ui:" + then + ":" + path).getBytes(StandardCharsets.UTF_8)))
          .getBytes(StandardCharsets.US_ASCII);
      return MessageDigest.isEqual(expected, proof.getBytes(StandardCharsets.US_ASCII));
    } catch (GeneralSecurityException e) {
      return false;
    }
  }

  /** The wall-bearing settings of this JVM (a daemon's properties file sets them as system
   * properties), as JSON; null where unset (Spark's default). */
  static String settings() {
    StringBuilder out = new StringBuilder("{");
    for (int i = 0; i < SETTINGS.length; i++) {
      String value = System.getProperty(SETTINGS[i]);
      out.append(i == 0 ? "" : ",").append('"').append(SETTINGS[i]).append("\":");
      out.append(value == null ? "null" : '"' + escaped(value) + '"');
    }
    return out.append('}').toString();
  }

  static String escaped(String value) {
    StringBuilder out = new StringBuilder();
    for (char c : value.toCharArray()) {
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    return out.toString();
  }
}
