//! SOAP faults: finding one in an answer (SOAP 1.1 and 1.2 envelopes, any namespace prefix) and
//! classifying it into a [`ProviderErrorKind`].
//!
//! A fault is only recognised as the child of the envelope's `Body`, so a payload element that
//! happens to be called `Fault` is not mistaken for one.

use hourbridge_provider_api::ProviderErrorKind;
use quick_xml::Reader;
use quick_xml::events::Event;

/// A SOAP fault, as the provider wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoapFault {
    /// `faultcode` (1.1) or `Code/Value` (1.2), e.g. `soap:Client`, `env:Sender`.
    pub code: String,
    /// `Code/Subcode/Value` (1.2 only), e.g. `wsse:FailedAuthentication`.
    pub subcode: Option<String>,
    /// `faultstring` (1.1) or the first `Reason/Text` (1.2).
    pub reason: String,
}

impl std::fmt::Display for SoapFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SOAP fault {}", self.code)?;
        if let Some(s) = &self.subcode {
            write!(f, " ({s})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The fault in `body`, when it is a SOAP envelope whose body is a fault; `None` for anything
/// else (a normal answer, non-XML, malformed XML).
pub fn parse_fault(body: &[u8]) -> Option<SoapFault> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = Reader::from_str(text);
    // Local names of the open elements.
    let mut stack: Vec<String> = Vec::new();
    let mut fault: Option<SoapFault> = None;
    let mut reason_done = false;
    loop {
        let event = reader.read_event().ok()?;
        let append = |fault: &mut Option<SoapFault>, stack: &[String], piece: &str| {
            let Some(f) = fault.as_mut() else { return };
            let inside = &stack[fault_depth(stack)..];
            let path: Vec<&str> = inside.iter().map(String::as_str).collect();
            match path.as_slice() {
                ["faultcode"] | ["Code", "Value"] => f.code.push_str(piece),
                ["Code", "Subcode", "Value"] => {
                    f.subcode.get_or_insert_with(String::new).push_str(piece)
                }
                ["faultstring"] | ["Reason", "Text"] => f.reason.push_str(piece),
                _ => {}
            }
        };
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                let in_body = stack.len() == 2 && stack[0] == "Envelope" && stack[1] == "Body";
                if in_body && name == "Fault" {
                    fault = Some(SoapFault::default());
                }
                stack.push(name);
            }
            Event::End(_) => {
                let closed = stack.pop();
                if fault.is_some() {
                    let depth = stack.len();
                    if closed.as_deref() == Some("Text")
                        && depth >= 4
                        && stack[depth - 1] == "Reason"
                    {
                        reason_done = true;
                    }
                    if depth == 2 {
                        // The fault element closed.
                        return fault.map(|f| SoapFault {
                            code: f.code.trim().to_owned(),
                            subcode: f.subcode.map(|s| s.trim().to_owned()),
                            reason: f.reason.trim().to_owned(),
                        });
                    }
                }
            }
            Event::Text(t) if fault.is_some() && !(reason_done && in_reason(&stack)) => {
                append(&mut fault, &stack, &t.xml10_content());
            }
            Event::CData(t) if fault.is_some() && !(reason_done && in_reason(&stack)) => {
                append(&mut fault, &stack, &t.xml10_content());
            }
            Event::GeneralRef(r) if fault.is_some() && !(reason_done && in_reason(&stack)) => {
                let piece = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => match &*r.xml10_content() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => format!("&{other};"),
                    },
                };
                append(&mut fault, &stack, &piece);
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Index of the first element inside `Fault` in `stack` (`Envelope`, `Body`, `Fault`, ...).
fn fault_depth(stack: &[String]) -> usize {
    3.min(stack.len())
}

fn in_reason(stack: &[String]) -> bool {
    stack.get(3).is_some_and(|s| s == "Reason")
}

/// Words that show a fault is about the credentials or the session, not about the request.
const AUTH_MARKERS: &[&str] = &[
    "failedauthentication",
    "invalidsecuritytoken",
    "securitytokenunavailable",
    "authenticat",
    "unauthori",
    "not authori",
    "login",
    "logon",
    "credential",
    "password",
    "token expired",
    "expired token",
    "invalid token",
    "session expired",
    "invalid session",
    "session is not valid",
];

/// The kind of a fault: one that looks like failed authentication (WS-Security codes, "invalid
/// username or password", an expired session or token) is
/// [`ProviderErrorKind::ReauthRequired`]; every other fault is [`ProviderErrorKind::Fault`]:
/// the provider processed the request and refused it, so it is not retried.
pub fn classify_fault(fault: &SoapFault) -> ProviderErrorKind {
    let hay = format!(
        "{} {} {}",
        fault.code,
        fault.subcode.as_deref().unwrap_or(""),
        fault.reason
    )
    .to_lowercase();
    if AUTH_MARKERS.iter().any(|m| hay.contains(m)) {
        ProviderErrorKind::ReauthRequired
    } else {
        ProviderErrorKind::Fault
    }
}

/// The end-user message of a fault error (the fault text itself goes to the detail only).
pub fn fault_message(provider: &str, kind: ProviderErrorKind) -> String {
    if kind == ProviderErrorKind::ReauthRequired {
        format!("{provider} rejected the credentials (SOAP fault)")
    } else {
        format!("{provider} refused the request (SOAP fault)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOAP11: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <soap:Fault>
      <faultcode>soap:Client</faultcode>
      <faultstring>Task 42 does not exist &amp; cannot be booked</faultstring>
      <detail><Fault>inner, not the fault</Fault></detail>
    </soap:Fault>
  </soap:Body>
</soap:Envelope>"#;

    const SOAP12: &str = r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"
    xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">
  <env:Body>
    <env:Fault>
      <env:Code>
        <env:Value>env:Sender</env:Value>
        <env:Subcode><env:Value>wsse:FailedAuthentication</env:Value></env:Subcode>
      </env:Code>
      <env:Reason>
        <env:Text xml:lang="en">The security token could not be authenticated</env:Text>
        <env:Text xml:lang="no">Ugyldig</env:Text>
      </env:Reason>
    </env:Fault>
  </env:Body>
</env:Envelope>"#;

    #[test]
    fn reads_soap_1_1_faults() {
        let f = parse_fault(SOAP11.as_bytes()).unwrap();
        assert_eq!(f.code, "soap:Client");
        assert_eq!(f.subcode, None);
        assert_eq!(f.reason, "Task 42 does not exist & cannot be booked");
        assert_eq!(classify_fault(&f), ProviderErrorKind::Fault);
    }

    #[test]
    fn reads_soap_1_2_faults_with_subcode_and_first_reason() {
        let f = parse_fault(SOAP12.as_bytes()).unwrap();
        assert_eq!(f.code, "env:Sender");
        assert_eq!(f.subcode.as_deref(), Some("wsse:FailedAuthentication"));
        assert_eq!(f.reason, "The security token could not be authenticated");
        assert_eq!(classify_fault(&f), ProviderErrorKind::ReauthRequired);
    }

    #[test]
    fn an_s_prefixed_login_fault_needs_reauthorisation() {
        let body = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
            <s:Fault><faultcode>s:Server</faultcode><faultstring>Invalid username or password</faultstring></s:Fault>
            </s:Body></s:Envelope>"#;
        let f = parse_fault(body.as_bytes()).unwrap();
        assert_eq!(classify_fault(&f), ProviderErrorKind::ReauthRequired);
    }

    #[test]
    fn answers_that_are_not_faults_are_none() {
        let ok = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
            <GetTasksResponse><Fault>a field called Fault</Fault></GetTasksResponse>
            </soap:Body></soap:Envelope>"#;
        assert_eq!(parse_fault(ok.as_bytes()), None);
        assert_eq!(parse_fault(b"{\"json\": true}"), None);
        assert_eq!(
            parse_fault(b"<html><body>502 Bad Gateway</body></html>"),
            None
        );
        assert_eq!(parse_fault(b"<unclosed"), None);
        assert_eq!(parse_fault(&[0xff, 0xfe]), None);
    }
}
