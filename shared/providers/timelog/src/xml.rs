//! A small namespace-resolved XML tree and an envelope writer.
//!
//! TimeLog's answers come from WCF and ASMX serializers whose prefixes and element order are
//! not part of the contract, so answers are read into a tree of elements carrying their
//! resolved namespace URI and local name, and callers navigate by local names within the
//! structure they expect. Requests are written with quick-xml's writer, which escapes text and
//! attribute values.

use std::sync::Arc;

use quick_xml::NsReader;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::{PrefixDeclaration, ResolveResult};

/// The XML Schema instance namespace (`i:nil`).
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// The SOAP 1.1 envelope namespace.
pub const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// An attribute, with its resolved namespace (empty for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace URI, empty when the attribute has no prefix.
    pub ns: String,
    /// Local name.
    pub name: String,
    /// The name as written (prefix included), for copying the element back out.
    pub qname: String,
    /// Unescaped value.
    pub value: String,
}

/// An element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Namespace URI, empty when none is in scope.
    pub ns: String,
    /// Local name.
    pub name: String,
    /// The name as written (prefix included).
    pub qname: String,
    /// Attributes other than namespace declarations.
    pub attrs: Vec<Attr>,
    /// Namespace bindings in scope at this element (its own declarations included), as
    /// `(prefix, uri)` with `""` for the default namespace; shared with descendants that
    /// declare nothing. Needed to copy a subtree out on its own.
    pub scope: Arc<Vec<(String, String)>>,
    /// The element's own declarations, as `(prefix, uri)`.
    pub decls: Vec<(String, String)>,
    /// Direct text content (unescaped, concatenated).
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Node>,
}

impl Node {
    /// The first child element with local name `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first child element with local name `name`, mutably.
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    /// Child elements with local name `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of local names.
    pub fn path(&self, names: &[&str]) -> Option<&Node> {
        names.iter().try_fold(self, |n, name| n.child(name))
    }

    /// Whether the element carries `xsi:nil="true"`.
    pub fn is_nil(&self) -> bool {
        self.attrs
            .iter()
            .any(|a| a.ns == XSI && a.name == "nil" && a.value.trim() == "true")
    }

    /// The trimmed text of child `name`; `None` when missing, nil or empty.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        let c = self.child(name)?;
        if c.is_nil() {
            return None;
        }
        let t = c.text.trim();
        (!t.is_empty()).then_some(t)
    }

    /// The untrimmed text of child `name` (free text such as notes); empty when missing or nil.
    pub fn raw_text_of(&self, name: &str) -> &str {
        match self.child(name) {
            Some(c) if !c.is_nil() => &c.text,
            _ => "",
        }
    }

    /// The value of attribute `name` (no namespace).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Writes this element (renamed to `name` in namespace `ns`) and its subtree to `w`, keeping
    /// the original prefixes of the descendants: every binding in scope here is declared again
    /// on the copy, so prefixed names and `xsi:type`-style values still resolve. Used to send
    /// back what TimeLog answered (read-modify-write), as its contract asks.
    pub fn write_as(&self, w: &mut XmlOut, name: &str, ns: &str) {
        let prefix = "hbop";
        let mut start = BytesStart::new(format!("{prefix}:{name}"));
        start.push_attribute((format!("xmlns:{prefix}").as_str(), ns));
        for (p, uri) in self.scope.iter() {
            if p == prefix {
                continue;
            }
            let key = if p.is_empty() {
                "xmlns".to_owned()
            } else {
                format!("xmlns:{p}")
            };
            start.push_attribute((key.as_str(), uri.as_str()));
        }
        for a in &self.attrs {
            start.push_attribute((a.qname.as_str(), a.value.as_str()));
        }
        w.event(Event::Start(start));
        self.write_content(w);
        w.event(Event::End(BytesEnd::new(format!("{prefix}:{name}"))));
    }

    fn write_content(&self, w: &mut XmlOut) {
        if !self.text.is_empty() && self.children.is_empty() {
            w.event(Event::Text(BytesText::new(&self.text)));
        }
        for c in &self.children {
            let mut start = BytesStart::new(c.qname.as_str());
            for (p, uri) in &c.decls {
                let key = if p.is_empty() {
                    "xmlns".to_owned()
                } else {
                    format!("xmlns:{p}")
                };
                start.push_attribute((key.as_str(), uri.as_str()));
            }
            for a in &c.attrs {
                start.push_attribute((a.qname.as_str(), a.value.as_str()));
            }
            if c.children.is_empty() && c.text.is_empty() {
                w.event(Event::Empty(start));
            } else {
                w.event(Event::Start(start));
                c.write_content(w);
                w.event(Event::End(BytesEnd::new(c.qname.as_str())));
            }
        }
    }
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError(pub String);

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn resolved(r: ResolveResult<'_>) -> Result<String, XmlError> {
    match r {
        ResolveResult::Bound(ns) => Ok(ns.as_ref().to_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(XmlError(format!("undeclared prefix {p:?}"))),
    }
}

/// Parses a document into its root element.
pub fn parse(body: &[u8]) -> Result<Node, XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| XmlError(format!("not UTF-8: {e}")))?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError(format!("malformed XML: {e}")))?;
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err(XmlError("content after the root element".into()));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let (ns, local) = reader.resolver().resolve_element(e.name());
                let ns = resolved(ns)?;
                let name = local.as_ref().to_owned();
                let qname = e.name().as_ref().to_owned();
                let mut attrs = Vec::new();
                let mut decls = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| XmlError(format!("malformed attribute: {e}")))?;
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| XmlError(format!("malformed attribute value: {e}")))?
                        .into_owned();
                    match a.key.as_namespace_binding() {
                        Some(PrefixDeclaration::Default) => decls.push((String::new(), value)),
                        Some(PrefixDeclaration::Named(p)) => decls.push((p.to_owned(), value)),
                        None => {
                            let (ans, alocal) = reader.resolver().resolve_attribute(a.key);
                            attrs.push(Attr {
                                ns: resolved(ans)?,
                                name: alocal.as_ref().to_owned(),
                                qname: a.key.as_ref().to_owned(),
                                value,
                            });
                        }
                    }
                }
                let scope = match stack.last() {
                    Some(parent) if decls.is_empty() => parent.scope.clone(),
                    parent => {
                        let mut s: Vec<(String, String)> =
                            parent.map(|p| p.scope.as_ref().clone()).unwrap_or_default();
                        for (p, uri) in &decls {
                            s.retain(|(q, _)| q != p);
                            s.push((p.clone(), uri.clone()));
                        }
                        Arc::new(s)
                    }
                };
                let node = Node {
                    ns,
                    name,
                    qname,
                    attrs,
                    scope,
                    decls,
                    text: String::new(),
                    children: Vec::new(),
                };
                if empty {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => root = Some(node),
                    }
                } else {
                    stack.push(node);
                }
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let piece = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match &*r.xml10_content() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => return Err(XmlError(format!("unknown entity &{other};"))),
                    },
                    Err(e) => return Err(XmlError(format!("bad character reference: {e}"))),
                };
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&piece);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(XmlError("document ends inside an element".into()));
    }
    root.ok_or_else(|| XmlError("no root element".into()))
}

/// The first element child of the SOAP `Body` of an envelope, checked to be in the SOAP 1.1
/// envelope namespace.
pub fn soap_body_child(root: &Node) -> Result<&Node, XmlError> {
    if root.name != "Envelope" || root.ns != SOAP_ENV {
        return Err(XmlError(format!(
            "not a SOAP 1.1 envelope (root {{{}}}{})",
            root.ns, root.name
        )));
    }
    let body = root
        .children
        .iter()
        .find(|c| c.name == "Body" && c.ns == SOAP_ENV)
        .ok_or_else(|| XmlError("SOAP envelope without Body".into()))?;
    body.children
        .first()
        .ok_or_else(|| XmlError("empty SOAP Body".into()))
}

/// An XML document being written: a thin wrapper over quick-xml's writer that cannot fail
/// (it writes into memory).
pub struct XmlOut {
    w: quick_xml::Writer<Vec<u8>>,
}

impl Default for XmlOut {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlOut {
    /// An empty document.
    pub fn new() -> Self {
        Self {
            w: quick_xml::Writer::new(Vec::new()),
        }
    }

    fn event(&mut self, e: Event<'_>) {
        // Writing into a Vec cannot fail.
        let _ = self.w.write_event(e);
    }

    /// Opens `<name attrs...>`.
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        let mut s = BytesStart::new(name);
        for a in attrs {
            s.push_attribute(*a);
        }
        self.event(Event::Start(s));
        self
    }

    /// Closes `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.event(Event::End(BytesEnd::new(name)));
        self
    }

    /// `<name attrs...>text</name>`, text escaped; characters XML 1.0 cannot carry at all
    /// (control characters other than tab and line breaks) are dropped, since no escape
    /// makes them legal and one in a note would make TimeLog refuse the whole envelope.
    pub fn leaf_with(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> &mut Self {
        self.open(name, attrs);
        if !text.is_empty() {
            let text = xml_chars(text);
            self.event(Event::Text(BytesText::new(&text)));
        }
        self.close(name)
    }

    /// `<name>text</name>`, text escaped.
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        self.leaf_with(name, &[], text)
    }

    /// `<name i:nil="true"/>` (the envelope declares `i`).
    pub fn nil(&mut self, name: &str) -> &mut Self {
        let mut s = BytesStart::new(name);
        s.push_attribute(("i:nil", "true"));
        self.event(Event::Empty(s));
        self
    }

    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.w.into_inner()
    }
}

/// `s` without the characters XML 1.0 does not allow.
fn xml_chars(s: &str) -> std::borrow::Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    };
    if s.chars().all(allowed) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.chars().filter(|c| allowed(*c)).collect())
    }
}

/// Writes a SOAP 1.1 envelope around what `body` writes. `xmlns:s` and `xmlns:i` (XML Schema
/// instance) are declared on the envelope.
pub fn envelope(body: impl FnOnce(&mut XmlOut)) -> Vec<u8> {
    let mut w = XmlOut::new();
    w.open("s:Envelope", &[("xmlns:s", SOAP_ENV), ("xmlns:i", XSI)]);
    w.open("s:Body", &[]);
    body(&mut w);
    w.close("s:Body");
    w.close("s:Envelope");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_namespaces_whatever_the_prefixes() {
        let doc = br#"<a:Root xmlns:a="urn:a" xmlns="urn:d" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
            <Child>one &amp; two &#x3C;</Child><a:Nil i:nil="true"/><x:C xmlns:x="urn:x">t</x:C></a:Root>"#;
        let root = parse(doc).unwrap();
        assert_eq!((root.ns.as_str(), root.name.as_str()), ("urn:a", "Root"));
        let c = root.child("Child").unwrap();
        assert_eq!(c.ns, "urn:d");
        assert_eq!(c.text, "one & two <");
        assert!(root.child("Nil").unwrap().is_nil());
        assert_eq!(root.text_of("Nil"), None);
        assert_eq!(root.child("C").unwrap().ns, "urn:x");
    }

    #[test]
    fn refuses_broken_documents() {
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"not xml").is_err());
        assert!(parse(b"<p:a/>").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn writer_escapes_text_and_attributes() {
        let body = envelope(|w| {
            w.leaf_with("x", &[("a", "\"<&>\"")], "<&> do\u{1}ne");
        });
        let s = String::from_utf8(body.clone()).unwrap();
        assert!(!s.contains("<&>"), "{s}");
        let root = parse(&body).unwrap();
        let x = soap_body_child(&root).unwrap();
        assert_eq!(x.text, "<&> done");
        assert_eq!(x.attr("a"), Some("\"<&>\""));
    }

    #[test]
    fn a_copied_subtree_keeps_resolving() {
        let doc = br#"<r xmlns:b="urn:b" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><b:T><b:Name>n &amp; m</b:Name><b:E i:nil="true"/><c:X xmlns:c="urn:c">1</c:X></b:T></r>"#;
        let root = parse(doc).unwrap();
        let t = root.child("T").unwrap();
        let mut w = XmlOut::new();
        t.write_as(&mut w, "task", "urn:op");
        let copy = parse(&w.finish()).unwrap();
        assert_eq!((copy.ns.as_str(), copy.name.as_str()), ("urn:op", "task"));
        let name = copy.child("Name").unwrap();
        assert_eq!((name.ns.as_str(), name.text.as_str()), ("urn:b", "n & m"));
        assert!(copy.child("E").unwrap().is_nil());
        assert_eq!(copy.child("X").unwrap().ns, "urn:c");
    }
}
