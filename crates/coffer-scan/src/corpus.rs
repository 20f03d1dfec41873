//! A labelled corpus of fake credentials, generated fresh on each call, for
//! tests and for measuring precision and recall beside other scanners.
//!
//! Positives are format-valid (right prefixes, lengths and checksums) but
//! random, so they are nobody's credential; negatives are the hard cases each
//! filter exists for. Nothing here is committed as a literal token: only
//! documented example keys appear literally.

use base64::Engine as _;

use crate::checks::base62_6;

/// One file of the corpus.
#[derive(Debug, Clone)]
pub struct Sample {
    /// A short name for the case, unique within the corpus.
    pub case: String,
    /// The file's name (its extension and name matter to scanners).
    pub file_name: String,
    pub content: String,
    /// The rule that must find it, or `None` for a negative.
    pub expect: Option<&'static str>,
    /// For negatives, the kind of hard case (the filter that drops it).
    pub kind: &'static str,
}

const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";
const UPPER_ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const URLSAFE: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";
const B64: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/";
const DIGITS: &[u8] = b"0123456789";

/// `n` characters drawn uniformly from `alphabet` (rejection sampling).
///
/// A draw of 8 to 64 characters that the scanner would take, by design, for
/// a placeholder or a word (it holds `example` or `lorem`, or is letters in
/// the shape of an identifier: about one draw in 10,000 for 32 letters and
/// digits) is drawn again: such a value is a known, accepted miss of the
/// filters, not a secret a generator hands out often enough to test for.
pub fn random_from(alphabet: &[u8], n: usize) -> String {
    loop {
        let out = draw(alphabet, n);
        if !(8..=64).contains(&n)
            || !(crate::filters::Filter::Placeholder.drops(out.as_bytes())
                || crate::filters::Filter::Word.drops(out.as_bytes()))
        {
            return out;
        }
    }
}

fn draw(alphabet: &[u8], n: usize) -> String {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        coffer_crypto::random::fill(&mut buf);
        for &b in &buf {
            if out.len() == n {
                break;
            }
            if usize::from(b) < limit {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    out
}

pub fn alnum(n: usize) -> String {
    random_from(ALNUM, n)
}
pub fn hex(n: usize) -> String {
    random_from(HEX, n)
}
fn b64(n: usize) -> String {
    random_from(B64, n)
}
fn urlsafe(n: usize) -> String {
    random_from(URLSAFE, n)
}

/// A GitHub-style token: prefix, 30 random base62 characters, and the CRC32
/// of those 30 in 6 base62 digits (GitHub and npm share the construction).
pub fn crc_token(prefix: &str) -> String {
    let body = alnum(30);
    let sum = base62_6(crc32fast::hash(body.as_bytes()));
    format!(
        "{prefix}{body}{}",
        std::str::from_utf8(&sum).expect("ASCII")
    )
}

/// A fresh fake GitHub personal access token with a valid checksum.
pub fn github_token() -> String {
    crc_token("ghp_")
}

/// A private key block of random base64 (not a key anyone holds).
fn pem(label: &str, lead: &str) -> String {
    let body = format!("{lead}{}", b64(1600));
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn b64url_json(v: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// A fresh JWT signed with nothing in particular (a random signature).
pub fn jwt() -> String {
    format!(
        "{}.{}.{}",
        b64url_json(r#"{"alg":"HS256","typ":"JWT"}"#),
        b64url_json(&format!(
            r#"{{"sub":"{}","role":"service","iat":1767225600}}"#,
            alnum(12)
        )),
        urlsafe(43)
    )
}

/// A password of the kind a person or a generator picks: letters, digits
/// and symbols.
fn password() -> String {
    format!("{}{}!{}", alnum(10), random_from(DIGITS, 2), alnum(6))
}

/// The corpus: positives of each provider and negatives of each filter kind,
/// `copies` fresh instances of each.
pub fn generate(copies: usize) -> Vec<Sample> {
    let mut out = Vec::new();
    for i in 0..copies {
        let mut pos = |case: &str, file_name: &str, content: String, rule: &'static str| {
            out.push(Sample {
                case: format!("{case}-{i}"),
                file_name: file_name.into(),
                content,
                expect: Some(rule),
                kind: "positive",
            });
        };
        pos(
            "github-pat-env",
            ".env",
            format!("GITHUB_TOKEN={}\n", github_token()),
            "github-token",
        );
        pos(
            "github-oauth-code",
            "client.py",
            format!(
                "session.headers[\"Authorization\"] = \"token {}\"\n",
                crc_token("gho_")
            ),
            "github-token",
        );
        pos(
            "github-app-yaml",
            "deploy.yml",
            format!(
                "steps:\n  - run: ./release.sh\n    with:\n      installation: {}\n",
                crc_token("ghs_")
            ),
            "github-token",
        );
        pos(
            "github-fine-grained",
            "notes.md",
            format!("use this one: github_pat_{}_{}\n", alnum(22), alnum(59)),
            "github-fine-grained-token",
        );
        pos(
            "npm",
            ".npmrc",
            format!("//registry.npmjs.org/:_authToken={}\n", crc_token("npm_")),
            "npm-token",
        );
        pos(
            "coffer-token",
            "ci.sh",
            format!(
                "export COFFER_ADDR=https://coffer.internal\ncoffer login <<< {}\n",
                coffer_crypto::token::generate_token().expose_secret()
            ),
            "coffer-token",
        );
        pos(
            "gitlab",
            ".gitlab-ci.yml",
            format!("variables:\n  GL_PUSH: glpat-{}\n", urlsafe(20)),
            "gitlab-token",
        );
        pos(
            "aws-pair",
            "credentials",
            format!(
                "[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}\n",
                random_from(UPPER_ALNUM, 16),
                b64(40)
            ),
            "aws-access-key-id",
        );
        pos(
            "rsa-key",
            "id_rsa",
            pem("RSA PRIVATE KEY", "MIIEpAIBAAKCAQEA"),
            "private-key",
        );
        pos(
            "openssh-key",
            "deploy_key",
            pem(
                "OPENSSH PRIVATE KEY",
                "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ",
            ),
            "private-key",
        );
        pos(
            "pkcs8-in-json",
            "service-account.json",
            format!(
                "{{\n  \"type\": \"service_account\",\n  \"private_key\": \"{}\"\n}}\n",
                pem("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC").replace('\n', "\\n")
            ),
            "private-key",
        );
        pos(
            "jwt",
            "request.http",
            format!("GET /v1/me\nAuthorization: Bearer {}\n", jwt()),
            "jwt",
        );
        pos(
            "postgres-url",
            ".env",
            format!(
                "DATABASE_URL=postgres://app:{}@db.internal:5432/app\n",
                alnum(18)
            ),
            "url-password",
        );
        pos(
            "mongo-url",
            "config.js",
            format!(
                "const uri = \"mongodb+srv://svc:{}@cluster0.mongo.internal/prod\";\n",
                alnum(20)
            ),
            "url-password",
        );
        pos(
            "sqlserver",
            "appsettings.json",
            format!(
                "{{ \"ConnectionStrings\": {{ \"Main\": \"Server=tcp:sql.internal,1433;Database=app;User ID=app;Password={};\" }} }}\n",
                password()
            ),
            "connection-string-password",
        );
        pos(
            "azure-storage",
            "local.settings.json",
            format!(
                "{{ \"AzureWebJobsStorage\": \"DefaultEndpointsProtocol=https;AccountName=acct{};AccountKey={}==;EndpointSuffix=core.windows.net\" }}\n",
                random_from(DIGITS, 4),
                b64(86)
            ),
            "azure-storage-key",
        );
        pos(
            "stripe",
            "billing.rb",
            format!("Stripe.api_key = 'sk_live_{}'\n", alnum(24)),
            "stripe-secret-key",
        );
        pos(
            "slack-bot",
            "bot.ts",
            format!(
                "const slack = new WebClient(\"xoxb-{}-{}-{}\");\n",
                random_from(DIGITS, 12),
                random_from(DIGITS, 13),
                alnum(24)
            ),
            "slack-token",
        );
        pos(
            "slack-webhook",
            "alerts.yaml",
            format!(
                "webhook: https://hooks.slack.com/services/T{}/B{}/{}\n",
                random_from(UPPER_ALNUM, 10),
                random_from(UPPER_ALNUM, 10),
                alnum(24)
            ),
            "slack-webhook",
        );
        pos(
            "google",
            "maps.html",
            format!(
                "<script src=\"https://maps.example/js?key=AIza{}\"></script>\n",
                urlsafe(35)
            ),
            "google-api-key",
        );
        pos(
            "sendgrid",
            "mail.py",
            format!(
                "sg = SendGridAPIClient(\"SG.{}.{}\")\n",
                urlsafe(22),
                urlsafe(43)
            ),
            "sendgrid-api-key",
        );
        pos(
            "twilio",
            "sms.go",
            format!("client := twilio.New(\"SK{}\", secret)\n", hex(32)),
            "twilio-api-key",
        );
        pos(
            "openai",
            "chat.py",
            format!(
                "client = OpenAI(api_key=\"sk-proj-{}T3BlbkFJ{}\")\n",
                urlsafe(40),
                urlsafe(40)
            ),
            "openai-api-key",
        );
        pos(
            "anthropic",
            "agent.ts",
            format!(
                "const client = new Anthropic({{ apiKey: \"sk-ant-api03-{}AA\" }});\n",
                urlsafe(93)
            ),
            "anthropic-api-key",
        );
        pos(
            "huggingface",
            "train.sh",
            format!("huggingface-cli login --token hf_{}\n", alnum(34)),
            "huggingface-token",
        );
        pos(
            "shopify",
            "shop.env",
            format!("SHOPIFY_ADMIN=shpat_{}\n", hex(32)),
            "shopify-token",
        );
        pos(
            "mailgun",
            "mailer.php",
            format!("$mg = Mailgun::create('key-{}');\n", hex(32)),
            "mailgun-api-key",
        );
        pos(
            "discord-webhook",
            "notify.sh",
            format!(
                "curl -X POST https://discord.com/api/webhooks/{}/{}\n",
                random_from(DIGITS, 18),
                urlsafe(68)
            ),
            "discord-webhook",
        );
        pos(
            "env-password",
            ".env",
            format!("DB_PASSWORD={}\n", password()),
            "generic-config-secret",
        );
        pos(
            "yaml-client-secret",
            "oauth.yaml",
            format!("oauth:\n  client_secret: {}\n", alnum(32)),
            "generic-config-secret",
        );
        pos(
            "json-api-key",
            "config.json",
            format!("{{\n  \"apiKey\": \"{}\"\n}}\n", alnum(32)),
            "generic-secret",
        );
        pos(
            "django-secret",
            "settings.py",
            format!("SECRET_KEY = \"{}\"\n", b64(50)),
            "generic-secret",
        );
        pos(
            "go-token",
            "main.go",
            format!("const authToken = \"{}\"\n", urlsafe(40)),
            "generic-secret",
        );
    }
    for i in 0..copies {
        let mut neg = |case: &str, file_name: &str, content: String, kind: &'static str| {
            out.push(Sample {
                case: format!("{case}-{i}"),
                file_name: file_name.into(),
                content,
                expect: None,
                kind,
            });
        };
        neg(
            "placeholder-env",
            ".env.example",
            "API_KEY=changeme\nDB_PASSWORD=<your-password>\n".into(),
            "placeholder",
        );
        neg(
            "placeholder-yaml",
            "values.yaml",
            "auth:\n  token: your-token-here\n  client_secret: xxxxxxxxxxxxxxxx\n".into(),
            "placeholder",
        );
        neg(
            "placeholder-github",
            "README.md",
            "Set GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx in your shell.\n".into(),
            "placeholder",
        );
        neg(
            "aws-example",
            "aws.md",
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n".into(),
            "example-key",
        );
        neg(
            "stripe-example",
            "docs.md",
            "Stripe.api_key = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'\n".into(),
            "example-key",
        );
        neg(
            "env-lookup",
            ".env",
            "DB_PASSWORD=${DB_PASSWORD}\nAPI_TOKEN=$API_TOKEN\n".into(),
            "lookup",
        );
        neg(
            "python-lookup",
            "settings.py",
            "SECRET_KEY = os.environ[\"SECRET_KEY\"]\npassword = os.getenv(\"DB_PASSWORD\")\n"
                .into(),
            "lookup",
        );
        neg("node-lookup", "app.js", "const apiKey = process.env.STRIPE_SECRET_KEY;\nconst token = process.env.GITHUB_TOKEN;\n".into(), "lookup");
        neg(
            "actions-lookup",
            "ci.yml",
            "env:\n  NPM_TOKEN: ${{ secrets.NPM_TOKEN }}\n".into(),
            "lookup",
        );
        neg(
            "cargo-lock",
            "Cargo.lock",
            format!(
                "[[package]]\nname = \"serde\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
                hex(64)
            ),
            "hash",
        );
        neg(
            "git-sha",
            "CHANGELOG.md",
            format!("- Fix the key rotation (commit {})\n", hex(40)),
            "hash",
        );
        neg(
            "hash-assignment",
            "build.gradle",
            format!("def keySha256 = \"{}\"\n", hex(64)),
            "hash",
        );
        neg(
            "npm-integrity",
            "package-lock.json",
            format!(
                "{{\n  \"node_modules/left-pad\": {{\n    \"resolved\": \"https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz\",\n    \"integrity\": \"sha512-{}==\"\n  }}\n}}\n",
                b64(86)
            ),
            "integrity",
        );
        neg(
            "yarn-integrity",
            "yarn.lock",
            format!(
                "left-pad@^1.3.0:\n  version \"1.3.0\"\n  integrity sha512-{}==\n",
                b64(86)
            ),
            "integrity",
        );
        neg(
            "uuid",
            "tenant.yaml",
            format!(
                "tenant:\n  token: {}-{}-4{}-a{}-{}\n",
                hex(8),
                hex(4),
                hex(3),
                hex(3),
                hex(12)
            ),
            "uuid",
        );
        neg(
            "data-uri",
            "theme.css.json",
            format!(
                "{{ \"iconKey\": \"data:image/png;base64,{}\" }}\n",
                b64(120)
            ),
            "data-uri",
        );
        neg(
            "bad-checksum-github",
            "old.env",
            format!("GH_PAT_LEGACY_ID=ghp_{}\n", alnum(36)),
            "checksum",
        );
        neg(
            "bad-checksum-npm",
            "old.npmrc",
            format!("//registry.npmjs.org/:_authToken_ref=npm_{}\n", alnum(36)),
            "checksum",
        );
        neg(
            "bad-checksum-coffer",
            "log.txt",
            format!("accessor for cft_{} revoked\n", alnum(49)),
            "checksum",
        );
        neg(
            "jwt-not-json",
            "fixture.txt",
            format!("eyJ{}.eyJ{}.{}\n", urlsafe(30), urlsafe(40), urlsafe(43)),
            "checksum",
        );
        neg(
            "private-key-placeholder",
            "tls.md",
            "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n".into(),
            "placeholder",
        );
        neg(
            "public-key",
            "server.pub.pem",
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                b64(64)
            ),
            "public",
        );
        neg("identifier", "form.py", "password_field = \"password_input_name\"\nTOKEN_URL = \"https://auth.internal/oauth/token\"\n".into(), "word");
        neg(
            "code-reference",
            "auth.rs",
            "let token = self.session.token();\nlet api_key = config.api_key.clone();\n".into(),
            "word",
        );
        neg(
            "weak-default",
            "docker-compose.yml",
            "environment:\n  POSTGRES_PASSWORD: postgres\n  REDIS_PASSWORD: password\n".into(),
            "weak",
        );
        neg(
            "secret-path",
            ".env",
            "DB_PASSWORD_FILE=/run/secrets/db_password\n".into(),
            "path",
        );
    }
    out
}
