//! Outgoing mail: SMTP (`smtp_url`) through lettre, or, on the embedded default with no SMTP
//! configured, the log (with a warning) so a developer can still follow the links.

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail setting: {0}")]
    Config(String),
    #[error("could not build the message: {0}")]
    Build(String),
    #[error("SMTP delivery failed: {0}")]
    Smtp(String),
}

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// The body: it carries reset and verification links.
    pub text: crate::secret::SecretString,
}

#[derive(Clone)]
pub enum Mailer {
    /// No SMTP server: mails are written to the log.
    Log,
    Smtp(Box<Smtp>),
    /// Engine tests: mails are kept here to be read.
    #[cfg(test)]
    Memory(std::sync::Arc<std::sync::Mutex<Vec<Mail>>>),
}

/// An SMTP relay and the sender address.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Log => f.write_str("Mailer::Log"),
            Mailer::Smtp(smtp) => write!(f, "Mailer::Smtp(from {})", smtp.from),
            #[cfg(test)]
            Mailer::Memory(_) => f.write_str("Mailer::Memory"),
        }
    }
}

impl Mailer {
    /// `smtp://host:port` (plain, e.g. a local relay), `smtp://host:port?tls=required` (STARTTLS)
    /// or `smtps://user:pass@host:465`.
    pub fn new(smtp_url: Option<&str>, from: &str) -> Result<Self, MailError> {
        let Some(url) = smtp_url else {
            return Ok(Mailer::Log);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Config(format!("smtp_url: {e}")))?
            .build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| MailError::Config(format!("mail_from: {e}")))?;
        Ok(Mailer::Smtp(Box::new(Smtp { transport, from })))
    }

    pub async fn send(&self, mail: Mail) -> Result<(), MailError> {
        match self {
            Mailer::Log => {
                tracing::warn!(
                    to = %mail.to,
                    subject = %mail.subject,
                    body = %mail.text.expose(),
                    "no SMTP server configured (smtp_url): this mail was written to the log instead of being sent"
                );
                Ok(())
            }
            #[cfg(test)]
            Mailer::Memory(sent) => {
                sent.lock()
                    .map_err(|_| MailError::Smtp("poisoned".into()))?
                    .push(mail);
                Ok(())
            }
            Mailer::Smtp(smtp) => {
                let (transport, from) = (&smtp.transport, &smtp.from);
                let to: Mailbox = mail
                    .to
                    .parse()
                    .map_err(|e| MailError::Build(format!("{e}")))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.text.into_inner())
                    .map_err(|e| MailError::Build(e.to_string()))?;
                transport
                    .send(message)
                    .await
                    .map_err(|e| MailError::Smtp(e.to_string()))?;
                Ok(())
            }
        }
    }

    /// Sends in the background: the caller's response time must not depend on whether a mail
    /// went out (no account enumeration by timing). Failures are logged.
    pub fn send_later(&self, mail: Mail) {
        let mailer = self.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(mail).await {
                tracing::error!(error = %e, "mail delivery failed");
            }
        });
    }
}
