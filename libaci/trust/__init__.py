"""Signatures and trust: what podkit-keygen, -sign, -verify, -trust and enforcement build on.

Secure by default means an image from the network runs only if the
verification policy accepts it.  This package is the pure half of that: key
files, signature formats, the policy and its evaluation, all in the wire
formats skopeo / c/image 5.23 and cosign use, so that signatures and
policies are interchangeable with them.  It starts no processes (OpenPGP
checks are a parameter, implemented with gpgv in stage0), does no network
I/O (callers fetch registry blobs and lookaside URLs), and imports
``cryptography``, PyNaCl and PyYAML only when a function needs them, so
importing it costs nothing on ``podkit-run``'s hot path.

Modules and their main API (import the module you need)::

  cosignkey   generate_key_pair(passphrase) -> CosignKeyPair(private_pem, public_pem)
              load_private_key(pem, passphrase, *, source) -> PrivateKey
                  (KeyFormatError exit 2 / PassphraseError exit 6)
              load_public_key(pem) / load_public_keys(pem) -> PublicKey(s)
              public_key_pem(key) -> bytes;  key_fingerprint(key) -> "sha256:<hex>"
  payload     build_payload(reference, digest, *, signature_type, creator, timestamp) -> bytes
              parse_payload(bytes, *, signature_type) -> SignaturePayload (strict)
  signature   UntrustedSignature.sigstore(payload, annotations) / .simple(openpgp_message)
              decode_signature_blob(bytes) / encode_signature_blob(sig)  (signature-N files)
  sigstore    make_signature(private_key, reference, digest, *, creator, timestamp)
              sign_payload(key, payload) -> base64;  verify_payload(keys, payload, b64) -> key
              attachment_tag(digest) -> "sha256-<hex>.sig"
              add_signatures(sigs, *, manifest, config) -> Attachment(manifest, config, blobs)
              parse_attachment(manifest, *, content_type) -> [AttachmentLayer]
                  then layer.to_signature(blob) -> UntrustedSignature
  openpgp     OpenPGPVerifier / DetachedVerifier / OpenPGPSigner: the gpgv/gpg seams
              gpg_status_fingerprint(status_fd_output) -> fingerprint
  scope       ImageName.docker(ref) / .path(transport, abspath) / .local(name)
  identity    IdentityRule, identity_matches(rule, image_ref, claimed) (signedIdentity)
  policy      parse_policy(bytes, *, source) / load_policy(path) -> Policy
              Policy.requirements_for(image) -> (scope, requirements)
              Policy.with_scope(transport, scope, reqs); dump_policy(policy) -> bytes
              Policy.from_dict / to_dict; SECURE_DEFAULT (proposal: no file -> reject)
              find_policy_file(home) -> ~/.config/podkit/policy.json or /etc/podkit/...
              requirement models: InsecureAcceptAnything, Reject, SignedBy,
              SigstoreSigned, SignedBaseLayer
  evaluate    evaluate(policy, image, manifest_digest, signatures, *, openpgp) -> Decision
              = verify_signatures(...) -> Evidence, then decide(...) (pure) -> Decision
              Decision: bool(), .reason, .scope, .requirement, .message, .check()
  lookaside   load_registries_d(dir) -> RegistriesD; .lookaside_for(ref, write=...)
              .use_sigstore_attachments(ref); default_lookaside(euid, home)
              read_signatures(base, ref, digest, *, fetch) -> [bytes]
              write_signature(base, ref, digest, blob) -> path;  signature_url(...)
  errors      KeyFormatError, PassphraseError, InvalidSignatureError,
              PolicyFormatError, RegistriesConfigError, LookasideError

Verifying a registry image, as podkit-verify / fetch would::

  policy = load_policy(find_policy_file(os.environ.get("HOME")))
  image = ImageName.docker("127.0.0.1:5000/app:1")
  sigs = []
  if registries_d.use_sigstore_attachments(ref):        # GET <repo>:sha256-<hex>.sig
      for layer in parse_attachment(sig_manifest, content_type=ctype):
          sigs.append(layer.to_signature(get_blob(layer.digest)))
  base = registries_d.lookaside_for(ref) or default_lookaside(os.geteuid(), home)
  sigs += [decode_signature_blob(b) for b in read_signatures(base, ref, digest)]
  decision = evaluate(policy, image, digest, sigs, openpgp=gpgv_verifier,
                      manifest=manifest_bytes)
  decision.check()        # TrustError (exit 3) with a one-line reason

Signing (podkit-sign)::

  key = load_private_key(open(k, "rb").read(), passphrase, source=k)
  sig = make_signature(key, "host/app:1", digest, creator="podkit 0.1.0",
                       timestamp=int(time.time()))
  att = add_signatures([sig], manifest=old_or_None, config=old_or_None)
  # PUT att.blobs, then att.manifest to tag attachment_tag(digest)
"""
