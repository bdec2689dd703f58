// A client of `kes serve` in another language: Java 17's own HTTP client, no libraries.
// Run as a single-file program: java KesClient.java BASE_URL TOKEN TYPE ID
// It creates a stream, appends to it, provokes a 409 with a stale version, reads the
// stream back, and prints one line of JSON with what it saw.
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public class KesClient {
    static final HttpClient http = HttpClient.newHttpClient();
    static String base, token;

    static HttpResponse<String> send(String method, String path, String body) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path))
            .header("Authorization", "Bearer " + token)
            .header("Accept", "application/json");
        if (body != null) {
            b.header("Content-Type", "application/json");
            b.method(method, HttpRequest.BodyPublishers.ofString(body));
        } else {
            b.method(method, HttpRequest.BodyPublishers.noBody());
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    static String append(int expected, String eventId, String type, int amount) {
        return "{\"expectedVersion\": " + expected + ", \"events\": [{\"eventType\": \"" + type
            + "\", \"eventId\": \"" + eventId + "\", \"payload\": {\"amount\": " + amount
            + ", \"by\": \"java\"}, \"metadata\": {\"client\": \"java\"}}]}";
    }

    static int number(String json, String field) {
        Matcher m = Pattern.compile("\"" + field + "\"\\s*:\\s*(-?\\d+)").matcher(json);
        if (!m.find()) throw new IllegalStateException("no " + field + " in " + json);
        return Integer.parseInt(m.group(1));
    }

    public static void main(String[] args) throws Exception {
        base = args[0];
        token = args[1];
        String stream = "/streams/" + args[2] + "/" + args[3];
        HttpResponse<String> created = send("POST", stream, append(0, args[3] + "-e1", "Opened", 100));
        HttpResponse<String> appended = send("POST", stream, append(1, args[3] + "-e2", "Deposited", 25));
        HttpResponse<String> stale = send("POST", stream, append(1, args[3] + "-e3", "Deposited", 99));
        HttpResponse<String> retry = send("POST", stream, append(1, args[3] + "-e2", "Deposited", 25));
        HttpResponse<String> read = send("GET", stream, null);
        List<Integer> versions = new ArrayList<>();
        Matcher m = Pattern.compile("\"version\":(\\d+),\"schemaVersion\"").matcher(read.body());
        while (m.find()) versions.add(Integer.parseInt(m.group(1)));
        System.out.println("{\"created\": [" + created.statusCode() + ", " + number(created.body(), "version") + "]"
            + ", \"appended\": [" + appended.statusCode() + ", " + number(appended.body(), "version") + "]"
            + ", \"stale\": [" + stale.statusCode() + ", " + number(stale.body(), "actualVersion") + ", \""
            + stale.headers().firstValue("content-type").orElse("") + "\"]"
            + ", \"retry\": [" + retry.statusCode() + ", " + number(retry.body(), "version") + "]"
            + ", \"read\": [" + read.statusCode() + ", " + versions + ", \""
            + read.headers().firstValue("etag").orElse("").replace("\"", "") + "\"]}");
    }
}
