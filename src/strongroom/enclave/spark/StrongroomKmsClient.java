package org.strongroom;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;

import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.crypto.KeyAccessDeniedException;
import org.apache.parquet.crypto.keytools.KmsClient;

/** Unwraps Parquet keys by asking Strongroom's key service; the master keys never leave it. */
public final class StrongroomKmsClient implements KmsClient {
  private HttpClient http;
  private String url;
  private String token;

  @Override
  public void initialize(Configuration conf, String kmsInstanceID, String kmsInstanceURL,
                         String accessToken) {
    this.url = kmsInstanceURL;
    this.token = accessToken;
    this.http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
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
}
