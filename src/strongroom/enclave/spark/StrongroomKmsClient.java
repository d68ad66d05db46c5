package org.strongroom;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.Base64;
import java.util.HexFormat;

import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.keytools.KmsClient;

/**
 * Unwraps Parquet keys by asking Strongroom's key service; the master keys never leave it.
 *
 * <p>Only over HTTPS, and only to the certificate the session pins: the KMS instance id is
 * "sha256:" and the hex SHA-256 of the service's certificate (made when the service starts).
 */
public final class StrongroomKmsClient implements KmsClient {
  private HttpClient http;
  private String url;
  private String token;

  @Override
  public void initialize(Configuration conf, String kmsInstanceID, String kmsInstanceURL,
                         String accessToken) {
    if (kmsInstanceURL == null || !kmsInstanceURL.startsWith("https://")) {
      throw new KeyAccessDeniedException("Strongroom's key service is reached over HTTPS only");
    }
    if (kmsInstanceID == null || !kmsInstanceID.startsWith("sha256:")) {
      throw new KeyAccessDeniedException("no pinned certificate for Strongroom's key service");
    }
    byte[] pinned = HexFormat.of().parseHex(kmsInstanceID.substring("sha256:".length()));
    this.url = kmsInstanceURL;
    this.token = accessToken;
    try {
      SSLContext tls = SSLContext.getInstance("TLS");
      tls.init(null, new TrustManager[] {new Pinned(pinned)}, null);
      this.http = HttpClient.newBuilder().sslContext(tls)
          .connectTimeout(Duration.ofSeconds(10)).build();
    } catch (java.security.GeneralSecurityException e) {
      throw new KeyAccessDeniedException("TLS for Strongroom's key service: " + e);
    }
  }

  @Override
  public String wrapKey(byte[] keyBytes, String masterKeyIdentifier) {
    throw new KeyAccessDeniedException("the cluster never writes encrypted files: "
        + "Strongroom writes them");
  }

  @Override
  public byte[] unwrapKey(String wrappedKey, String masterKeyIdentifier) {
    String body = masterKeyIdentifier + "\n" + wrappedKey;
    HttpRequest request = HttpRequest.newBuilder(URI.create(url + "/unwrap"))
        .timeout(Duration.ofSeconds(30))
        .header("Authorization", "Bearer " + token)
        .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8))
        .build();
    HttpResponse<String> response;
    try {
      response = http.send(request, HttpResponse.BodyHandlers.ofString());
    } catch (Exception e) {
      throw new KeyAccessDeniedException("Strongroom's key service did not answer: " + e);
    }
    if (response.statusCode() != 200) {
      throw new KeyAccessDeniedException("Strongroom's key service refused: "
          + response.statusCode() + " " + response.body());
    }
    return Base64.getDecoder().decode(response.body().trim());
  }

  /** Trusts exactly one certificate, by its SHA-256. */
  private static final class Pinned implements X509TrustManager {
    private final byte[] digest;

    Pinned(byte[] digest) {
      this.digest = digest;
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType)
        throws CertificateException {
      try {
        byte[] seen = MessageDigest.getInstance("SHA-256").digest(chain[0].getEncoded());
        if (!MessageDigest.isEqual(seen, digest)) {
          throw new CertificateException("not the key service's pinned certificate");
        }
      } catch (java.security.NoSuchAlgorithmException e) {
        throw new CertificateException(e);
      }
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType)
        throws CertificateException {
      throw new CertificateException("the key service's client trusts no client");
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
      return new X509Certificate[0];
    }
  }
}
